"""Validating and compiling policy documents.

Everything is checked once, here, and every problem is reported with the file, the role and the field,
so that ``claude-rbac check`` can list them all at once. A value is never echoed back when it could be a
pasted key (see :func:`~._workspaces.redact`). Nothing in this module runs per request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..errors import PolicyError, PolicyProblem
from ._grants import DEFAULT_GRANTS, GRANT_KEYS, grant_problem
from ._model import Budget, Mode, OnExcess, Role, Settings
from ._patterns import ModelMatcher, pattern_problem
from ._price_schema import overridden, shipped_prices
from ._priced import unpriced_problems, with_workspace_spend
from ._revision import revision_problem
from ._spend import Spend
from ._values import MAX_TOKENS_CEILING, limit_problem
from ._workspaces import KEY_LITERAL, compile_key_settings, parse_spend, redact

__all__ = ["CompiledPolicy", "compile_policy"]

TOP_LEVEL_KEYS: Final = frozenset(
    {
        "version",
        "revision",
        "on_excess",
        "roles",
        "mode",
        "workspaces",
        "default_workspace",
        "allowed_org_ids",
        "revoked",
        "strict",
        "prices",
    }
)
ROLE_KEYS: Final = frozenset(
    {
        "inherits",
        "models",
        "max_tokens",
        "rpm",
        "allowed",
        "description",
        "tpm",
        "budget",
        "pool",
        "spend",
        "workspace",
        "mode",
        "batches",
        "strict",
        *GRANT_KEYS,
    }
)
BUDGET_KEYS: Final = frozenset({"day", "month"})
POOL_KEYS: Final = frozenset({"tpm", "budget", "spend"})
ROLE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
MODES: Final = ("enforce", "shadow")
BATCH_ACCESS: Final = ("own", "all")


class _Problems:
    """Collects problems so one load reports all of them."""

    def __init__(self, source: str | None) -> None:
        self.source = source
        self.items: list[PolicyProblem] = []

    def add(self, message: str, *, role: str | None = None, field: str | None = None) -> None:
        self.items.append(PolicyProblem(message, self.source, role, field))

    def raise_if_any(self) -> None:
        if self.items:
            raise PolicyError(self.items)


def _shown(name: object) -> str:
    """A key or role name for a problem's location, redacted if it looks like an API key."""
    return redact(name).strip("'\"") if not isinstance(name, str) or KEY_LITERAL.search(name) else name


def _limit(value: object, problems: _Problems, role: str | None, field: str, ceiling: int | None = None) -> int | None:
    if value is None:
        return None
    problem = limit_problem(value) if ceiling is None else limit_problem(value, ceiling)
    if problem is not None:
        problems.add(problem, role=role, field=field)
        return None
    assert isinstance(value, int)
    return value


def _budget(value: object, problems: _Problems, role: str | None, field: str) -> Budget:
    if value is None:
        return Budget()
    if not isinstance(value, Mapping):
        problems.add("must be a table with `day` and/or `month`", role=role, field=field)
        return Budget()
    for key in value:
        if key not in BUDGET_KEYS:
            problems.add(f"unknown key {redact(key)} (expected day, month)", role=role, field=f"{field}.{key}")
    budget = Budget(
        _limit(value.get("day"), problems, role, f"{field}.day"),
        _limit(value.get("month"), problems, role, f"{field}.month"),
    )
    if not budget:
        problems.add("must set `day` and/or `month`", role=role, field=field)
    return budget


def _names(value: object, problems: _Problems, role: str, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        problems.add("must be a string or a list of strings", role=role, field=field)
        return ()
    names = []
    for item in value:
        if not isinstance(item, str):
            problems.add(f"must contain strings, got {type(item).__name__}", role=role, field=field)
        else:
            names.append(item)
    return tuple(names)


def _flag(value: object, problems: _Problems, role: str | None, field: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        problems.add(f"must be true or false, got {type(value).__name__}", role=role, field=field)
        return None
    return value


def _mode(value: object, problems: _Problems, role: str | None, field: str) -> Any:
    if value is None:
        return None
    if value not in MODES:
        problems.add(f"must be one of {', '.join(MODES)}, got {redact(value)}", role=role, field=field)
        return None
    return value


class _RoleSpec:
    """One role as written, checked field by field."""

    def __init__(self, name: str, spec: Mapping[str, Any], problems: _Problems) -> None:
        self.name = name
        self.keys = tuple(key for key in spec if isinstance(key, str))
        for key in spec:
            if key not in ROLE_KEYS:
                problems.add(f"unknown key {redact(key)}", role=name, field=_shown(key))
        self.inherits = _names(spec.get("inherits"), problems, name, "inherits")
        self.models = _names(spec.get("models"), problems, name, "models")
        for pattern in self.models:
            if (problem := pattern_problem(pattern)) is not None:
                problems.add(problem, role=name, field="models")
        self.allowed = _flag(spec.get("allowed"), problems, name, "allowed")
        self.strict = _flag(spec.get("strict"), problems, name, "strict")
        self.grants: dict[str, tuple[str, ...]] = {}
        for key in GRANT_KEYS:
            if key in spec:
                entries = _names(spec[key], problems, name, key)
                for entry in entries:
                    if (problem := grant_problem(key, entry)) is not None:
                        problems.add(problem, role=name, field=key)
                self.grants[key] = entries
        description = spec.get("description", "")
        if not isinstance(description, str):
            problems.add("must be a string", role=name, field="description")
            description = ""
        self.description = description
        self.max_tokens = _limit(spec.get("max_tokens"), problems, name, "max_tokens", MAX_TOKENS_CEILING)
        self.rpm = _limit(spec.get("rpm"), problems, name, "rpm")
        self.tpm = _limit(spec.get("tpm"), problems, name, "tpm")
        self.budget = _budget(spec.get("budget"), problems, name, "budget")
        self.spend = parse_spend(spec.get("spend"), "spend", problems.add, name)
        self.pool_tpm: int | None = None
        self.pool_budget = Budget()
        self.pool_spend = Spend()
        pool = spec.get("pool")
        if pool is not None:
            if not isinstance(pool, Mapping):
                problems.add("must be a table with `tpm`, `budget` and/or `spend`", role=name, field="pool")
            else:
                for key in pool:
                    if key not in POOL_KEYS:
                        problems.add(f"unknown key {redact(key)}", role=name, field=f"pool.{key}")
                self.pool_tpm = _limit(pool.get("tpm"), problems, name, "pool.tpm")
                self.pool_budget = _budget(pool.get("budget"), problems, name, "pool.budget")
                self.pool_spend = parse_spend(pool.get("spend"), "pool.spend", problems.add, name)
        workspace = spec.get("workspace")
        if workspace is not None and not isinstance(workspace, str):
            problems.add("must be the name of a workspace", role=name, field="workspace")
            workspace = None
        self.workspace: str | None = workspace
        self.mode = _mode(spec.get("mode"), problems, name, "mode")
        batches = spec.get("batches")
        if batches is not None and batches not in BATCH_ACCESS:
            problems.add(f"must be one of {', '.join(BATCH_ACCESS)}, got {redact(batches)}", role=name, field="batches")
            batches = None
        self.batches: Any = batches


def _linearise(name: str, specs: Mapping[str, _RoleSpec]) -> list[str]:
    """Ancestors of ``name``, nearest first: parents in listed order, depth first, each once."""
    order: list[str] = []
    stack = list(reversed(specs[name].inherits))
    while stack:
        parent = stack.pop()
        if parent in order or parent not in specs:
            continue
        order.append(parent)
        stack.extend(reversed(specs[parent].inherits))
    return order


def _find_cycles(specs: Mapping[str, _RoleSpec], problems: _Problems) -> bool:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    found = False

    def visit(name: str, path: list[str]) -> None:
        nonlocal found
        state[name] = 1
        for parent in specs[name].inherits:
            if parent not in specs or parent == name:
                continue
            if state.get(parent) == 1:
                cycle = [*path[path.index(parent) :], parent] if parent in path else [name, parent]
                problems.add(f"inheritance cycle: {' -> '.join(cycle)}", role=name, field="inherits")
                found = True
            elif state.get(parent) is None:
                visit(parent, [*path, parent])
        state[name] = 2

    for name in specs:
        if state.get(name) is None:
            visit(name, [name])
    return found


def _inherit(attr: str, spec: _RoleSpec, chain: Sequence[_RoleSpec]) -> Any:
    for candidate in (spec, *chain):
        value = getattr(candidate, attr)
        if value is not None and value != Budget() and value != Spend():
            return value
    return getattr(spec, attr)


def _granted(key: str, spec: _RoleSpec, chain: Sequence[_RoleSpec]) -> tuple[str, ...]:
    """A request-field grant: the union over the role and its ancestors of what each writes (else the default)."""
    return tuple(dict.fromkeys(e for each in (spec, *chain) for e in each.grants.get(key, DEFAULT_GRANTS[key])))


def _compile_roles(roles: Mapping[str, Any], problems: _Problems, strict: bool) -> dict[str, Role]:
    specs: dict[str, _RoleSpec] = {}
    for name, spec in roles.items():
        if not isinstance(name, str) or not ROLE_NAME.fullmatch(name):
            problems.add(
                "role names are 1-64 characters: letters, digits and _.:- (starting with a letter or digit)",
                role=_shown(name),
            )
            continue
        if not isinstance(spec, Mapping):
            problems.add("a role must be a table", role=name)
            continue
        specs[name] = _RoleSpec(name, spec, problems)

    for name, spec in specs.items():
        for parent in spec.inherits:
            if parent == name:
                problems.add("a role cannot inherit from itself", role=name, field="inherits")
            elif parent not in specs:
                problems.add(f"inherits from unknown role {redact(parent)}", role=name, field="inherits")
    if _find_cycles(specs, problems):
        return {}

    compiled: dict[str, Role] = {}
    for name, spec in specs.items():
        chain = [specs[ancestor] for ancestor in _linearise(name, specs)]
        models = tuple(dict.fromkeys([*spec.models, *(m for parent in chain for m in parent.models)]))
        allowed = spec.allowed if spec.allowed is not None else bool(models)
        if allowed and not models:
            problems.add("an allowed role needs at least one model", role=name, field="models")
        compiled[name] = Role(
            name=name,
            allowed=allowed,
            models=models,
            max_tokens=_inherit("max_tokens", spec, chain),
            rpm=_inherit("rpm", spec, chain),
            inherits=spec.inherits,
            ancestors=frozenset(parent.name for parent in chain),
            description=spec.description,
            tpm=_inherit("tpm", spec, chain),
            budget=_inherit("budget", spec, chain),
            pool_tpm=_inherit("pool_tpm", spec, chain),
            pool_budget=_inherit("pool_budget", spec, chain),
            spend=_inherit("spend", spec, chain),
            pool_spend=_inherit("pool_spend", spec, chain),
            workspace=_inherit("workspace", spec, chain),
            mode=_inherit("mode", spec, chain),
            batches=_inherit("batches", spec, chain) or "own",
            strict=next((each.strict for each in (spec, *chain) if each.strict is not None), strict),
            **{key: _granted(key, spec, chain) for key in GRANT_KEYS},  # type: ignore[arg-type]
            own_models=spec.models,
            own_keys=frozenset(key for key in spec.keys if key in ROLE_KEYS),
            matcher=ModelMatcher(models),
        )
    return compiled


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    roles: dict[str, Role]
    on_excess: OnExcess
    settings: Settings
    revision: str | None = None
    """The document's own ``revision``, when it names one."""


def compile_policy(
    data: Mapping[str, Any], *, source: str | None = None, require_version: bool = False
) -> CompiledPolicy:
    """Validate ``data`` and compile it, or raise :class:`PolicyError` listing every problem.

    ``require_version`` (for files): the document must say ``version = 1`` and define at least one role.
    """
    problems = _Problems(source)
    if not isinstance(data, Mapping):
        problems.add("a policy must be a table/mapping at the top level")
        problems.raise_if_any()
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            problems.add(f"unknown top-level key {redact(key)}", field=_shown(key))
    if require_version and "version" not in data:
        problems.add("missing: a policy file says which format it is written in, `version = 1`", field="version")
    version = data.get("version", 1)
    if version != 1 or isinstance(version, bool):
        problems.add(f"unsupported policy version {redact(version)}; this release reads version 1", field="version")
    on_excess = data.get("on_excess", "clamp")
    if on_excess not in ("clamp", "reject"):
        problems.add(f"must be 'clamp' or 'reject', got {redact(on_excess)}", field="on_excess")
        on_excess = "clamp"
    mode: Mode = _mode(data.get("mode"), problems, None, "mode") or "enforce"
    strict = bool(_flag(data.get("strict"), problems, None, "strict"))
    roles_data = data.get("roles", {})
    roles: dict[str, Role] = {}
    if not isinstance(roles_data, Mapping):
        problems.add("must be a table of roles", field="roles")
    else:
        if require_version and not roles_data:
            problems.add("missing: a policy file defines at least one role ([roles.NAME])", field="roles")
        roles = _compile_roles(roles_data, problems, strict)

    revision = data.get("revision")
    if revision is not None and (problem := revision_problem(revision)) is not None:
        problems.add(problem, field="revision")
        revision = None
    keys = compile_key_settings(data, roles, problems.add)
    raw_prices = data.get("prices")
    prices, price_problems = overridden(shipped_prices(), raw_prices, source)
    problems.items.extend(price_problems)
    roles = {name: with_workspace_spend(role, keys.workspaces, keys.default_workspace) for name, role in roles.items()}
    if prices is not None:
        for message, role_name in unpriced_problems(roles, prices):
            problems.add(message, role=role_name, field="models")
    problems.raise_if_any()
    settings = Settings(
        mode=mode,
        workspaces=keys.workspaces,
        default_workspace=keys.default_workspace,
        allowed_org_ids=keys.allowed_org_ids,
        revoked=keys.revoked,
        strict=strict,
        prices=raw_prices if isinstance(raw_prices, Mapping) else {},
        price_table=prices,
    )
    return CompiledPolicy(roles, on_excess, settings, revision)
