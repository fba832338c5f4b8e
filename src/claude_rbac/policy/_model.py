"""The policy's vocabulary: who asks (:class:`Principal`), what a role grants (:class:`Role`), how a route
narrows it (:class:`Scope`), the policy-wide settings and the answer to one question (:class:`Decision`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from ..errors import PolicyError, PolicyProblem
from ._grants import DEFAULT_GRANTS, GRANT_KEYS, GrantMatchers, grant_problem
from ._patterns import ModelMatcher, describe_patterns, pattern_problem
from ._prices import PriceTable
from ._spend import NO_SPEND, Spend, micro_dollars
from ._values import MAX_TOKENS_CEILING, limit_problem
from ._workspaces import Workspace

__all__ = [
    "UNRESTRICTED",
    "BatchAccess",
    "Budget",
    "Decision",
    "FieldValues",
    "Mode",
    "OnExcess",
    "Principal",
    "Role",
    "Scope",
    "Settings",
    "as_patterns",
    "min_cap",
]

Mode = Literal["enforce", "shadow"]
OnExcess = Literal["clamp", "reject"]
BatchAccess = Literal["own", "all"]
"""Which batches a role may retrieve, read the results of and cancel: those its principal created, or all."""
FieldValues = tuple[tuple[str, tuple[str, ...]], ...]
"""Request-field values by name, in order: ``(("tools", ("custom", "web_search_20250305")), ("speed", ("fast",)))``."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in user as the app's own identity layer knows them. Never built from client input."""

    id: str
    role: str | None

    def __repr__(self) -> str:
        return f"Principal(id={self.id!r}, role={self.role!r})"


@dataclass(frozen=True, slots=True)
class Budget:
    """Tokens per day and/or per month."""

    day: int | None = None
    month: int | None = None

    def __bool__(self) -> bool:
        return self.day is not None or self.month is not None


@dataclass(frozen=True, slots=True)
class Role:
    """A compiled role: its own settings merged with what it inherits.

    ``models`` is the union of the role's patterns and its ancestors'; every other setting is the
    role's own value or, when it has none, the nearest ancestor's (parents in the order listed).
    ``own_models`` are the patterns the role itself lists (``claude-rbac explain`` names the rule).
    """

    name: str
    allowed: bool
    models: tuple[str, ...]
    max_tokens: int | None
    rpm: int | None
    inherits: tuple[str, ...] = ()
    ancestors: frozenset[str] = frozenset()
    description: str = ""
    tpm: int | None = None
    budget: Budget = Budget()
    pool_tpm: int | None = None
    pool_budget: Budget = Budget()
    spend: Spend = NO_SPEND
    """US dollars per principal per UTC day/month, in micro-dollars."""
    pool_spend: Spend = NO_SPEND
    """US dollars the role's principals share per UTC day/month, in micro-dollars."""
    workspace_spend: Spend = NO_SPEND
    """The spend limit of the role's workspace (its own or the default), shared by every role there."""
    workspace: str | None = None
    mode: Mode | None = None
    batches: BatchAccess = "own"
    tools: tuple[str, ...] = DEFAULT_GRANTS["tools"]
    mcp_servers: tuple[str, ...] = ()
    service_tiers: tuple[str, ...] = DEFAULT_GRANTS["service_tiers"]
    speeds: tuple[str, ...] = DEFAULT_GRANTS["speeds"]
    inference_geos: tuple[str, ...] = ()
    betas: tuple[str, ...] = ()
    strict: bool = False
    """Refuse a request with a field claude_rbac does not govern (``field_not_allowed``); else record it."""
    own_models: tuple[str, ...] = ()
    own_keys: frozenset[str] = field(default=frozenset(), compare=False)
    """The settings the role writes itself (the others are inherited or defaults): ``claude-rbac diff`` says
    which changes come through inheritance."""
    matcher: ModelMatcher = field(default_factory=lambda: ModelMatcher(()), repr=False, compare=False)
    grants: GrantMatchers = field(init=False, repr=False, compare=False)
    """The request-field grants (:data:`~._grants.GRANT_KEYS`), compiled."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "grants", GrantMatchers((key, getattr(self, key)) for key in GRANT_KEYS))

    def allows_model(self, model: str) -> bool:
        return self.matcher(model)

    @property
    def counts_tokens(self) -> bool:
        """Whether a call must reserve tokens: the role has a TPM limit, a budget or a pool."""
        return bool(self.tpm or self.budget or self.pool_tpm or self.pool_budget or self.spends)

    @property
    def spends(self) -> bool:
        """Whether a call must reserve dollars: the role, its pool or its workspace has a spend limit."""
        return bool(self.spend or self.pool_spend or self.workspace_spend)

    def includes(self, required: str) -> bool:
        """Whether this role is ``required`` or inherits from it (``power`` includes ``user``)."""
        return self.name == required or required in self.ancestors


def as_patterns(models: Iterable[str] | str | None) -> tuple[str, ...] | None:
    """A route's ``models=`` argument (one pattern, several, or ``None`` for no narrowing) as a tuple."""
    if models is None:
        return None
    return (models,) if isinstance(models, str) else tuple(models)


def scope_name(
    models: tuple[str, ...] | None,
    max_tokens: int | None,
    rpm: int | None,
    field_sets: FieldValues = (),
    spend: Spend = NO_SPEND,
) -> str:
    if models is None and max_tokens is None and rpm is None and not field_sets and not spend:
        return ""
    name = f"models={','.join(models or ())};max_tokens={max_tokens};rpm={rpm}"
    if spend:
        name += f";spend={spend.day},{spend.month}"
    return name + "".join(f";{key}={','.join(patterns)}" for key, patterns in field_sets)


def parse_scope_spend(value: object) -> tuple[Spend, list[PolicyProblem]]:
    """A route's ``spend={"day": 0.50}`` (US dollars) as a :class:`Spend`, or the problems with it."""
    if value is None:
        return Spend(), []
    if not isinstance(value, Mapping) or not value or not set(value) <= {"day", "month"}:
        return Spend(), [
            PolicyProblem("must be a mapping with `day` and/or `month` in US dollars", "route scope", field="spend")
        ]
    problems: list[PolicyProblem] = []
    parsed: dict[str, int | None] = {}
    for period in ("day", "month"):
        if period in value:
            micro, problem = micro_dollars(value[period])
            if problem is not None:
                problems.append(PolicyProblem(problem, "route scope", field=f"spend.{period}"))
            parsed[period] = micro
    return Spend(parsed.get("day"), parsed.get("month")), problems


def _scope_problems(
    models: tuple[str, ...] | None, max_tokens: object, rpm: object, field_sets: FieldValues
) -> list[PolicyProblem]:
    problems = []
    if models is not None:
        if not models:
            problems.append(PolicyProblem("must name at least one model pattern", "route scope", field="models"))
        for pattern in models:
            if (problem := pattern_problem(pattern)) is not None:
                problems.append(PolicyProblem(problem, "route scope", field="models"))
    for name, value, ceiling in (("max_tokens", max_tokens, MAX_TOKENS_CEILING), ("rpm", rpm, None)):
        if value is not None and (problem := limit_problem(value, *([ceiling] if ceiling else []))) is not None:
            problems.append(PolicyProblem(problem, "route scope", field=name))
    for key, patterns in field_sets:
        for pattern in patterns:
            if (problem := grant_problem(key, pattern)) is not None:
                problems.append(PolicyProblem(problem, "route scope", field=key))
    return problems


class _AllOf:
    """Matches a model only when every one of its matchers does: two route scopes, intersected."""

    __slots__ = ("matchers",)

    def __init__(self, matchers: Iterable[ModelMatcher]) -> None:
        self.matchers = tuple(matchers)

    def __call__(self, model: str) -> bool:
        return all(matcher(model) for matcher in self.matchers)


@dataclass(frozen=True, slots=True)
class Scope:
    """What one route narrows a role to. It can only narrow: the role's grants still apply.

    Several guards on one request (a router's and an endpoint's) intersect: :meth:`intersect` keeps
    every model set (a model must match each), every request-field set (a value must match each of its
    key's), the lower ``max_tokens``, the lower ``rpm`` and the lower ``spend``.

    ``spend`` (micro-dollars per UTC day/month) is a limit of the route's own per principal, counted on top of
    the role's: it can lower what the principal may spend through this route, never raise the role's.
    """

    name: str = ""
    models: tuple[str, ...] | None = None
    max_tokens: int | None = None
    rpm: int | None = None
    also: tuple[tuple[str, ...], ...] = ()
    """Further model sets a model must match too (from intersected scopes)."""
    spend: Spend = NO_SPEND
    field_sets: FieldValues = ()
    """``(key, patterns)`` per request-field narrowing (``tools``, ``betas``...): a value must match each set of its
    key, on top of the role's grant. An empty set allows nothing (``tools=[]``: no tools on this route)."""
    matcher: ModelMatcher | _AllOf | None = field(default=None, repr=False, compare=False)
    grants: GrantMatchers = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grants", GrantMatchers(self.field_sets))

    @classmethod
    def build(
        cls,
        *,
        models: Iterable[str] | str | None = None,
        max_tokens: int | None = None,
        rpm: int | None = None,
        name: str | None = None,
        tools: Iterable[str] | str | None = None,
        mcp_servers: Iterable[str] | str | None = None,
        service_tiers: Iterable[str] | str | None = None,
        speeds: Iterable[str] | str | None = None,
        inference_geos: Iterable[str] | str | None = None,
        betas: Iterable[str] | str | None = None,
        spend: Mapping[str, object] | None = None,
    ) -> Scope:
        """A validated scope; :class:`PolicyError` for a bad declaration (at decoration time).

        ``spend`` is in US dollars: ``{"day": 0.50}`` lowers what a principal may spend per UTC day here."""
        patterns = as_patterns(models)
        given = (tools, mcp_servers, service_tiers, speeds, inference_geos, betas)
        field_sets = tuple(
            (key, as_patterns(value) or ()) for key, value in zip(GRANT_KEYS, given, strict=True) if value is not None
        )
        limit, spend_problems = parse_scope_spend(spend)
        if problems := [*_scope_problems(patterns, max_tokens, rpm, field_sets), *spend_problems]:
            raise PolicyError(problems)
        if name is None:
            name = scope_name(patterns, max_tokens, rpm, field_sets, limit)
        matcher = ModelMatcher(patterns) if patterns is not None else None
        return cls(
            name=name,
            models=patterns,
            max_tokens=max_tokens,
            rpm=rpm,
            spend=limit,
            field_sets=field_sets,
            matcher=matcher,
        )

    @property
    def narrows(self) -> bool:
        return (
            self.models is not None
            or self.max_tokens is not None
            or self.rpm is not None
            or bool(self.spend)
            or bool(self.field_sets)
        )

    @property
    def model_sets(self) -> tuple[tuple[str, ...], ...]:
        return ((self.models,) if self.models is not None else ()) + self.also

    def describe_models(self) -> str:
        return " and ".join(describe_patterns(patterns) for patterns in self.model_sets)

    def intersect(self, other: Scope) -> Scope:
        """The scope both admit: what a request passed by two guards may do."""
        if not other.narrows or other == self:
            return self
        if not self.narrows:
            return other
        sets = tuple(dict.fromkeys((*self.model_sets, *other.model_sets)))
        matchers = [ModelMatcher(patterns) for patterns in sets]
        matcher: ModelMatcher | _AllOf | None = None
        if len(matchers) == 1:
            matcher = matchers[0]
        elif matchers:
            matcher = _AllOf(matchers)
        return Scope(
            name=f"{self.name}&{other.name}",
            models=sets[0] if sets else None,
            max_tokens=min_cap(self.max_tokens, other.max_tokens),
            rpm=min_cap(self.rpm, other.rpm),
            spend=self.spend.narrowed(other.spend),
            also=sets[1:],
            field_sets=tuple(dict.fromkeys((*self.field_sets, *other.field_sets))),
            matcher=matcher,
        )


UNRESTRICTED: Final = Scope()


def min_cap(a: int | None, b: int | None) -> int | None:
    """The tighter of two optional caps."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


@dataclass(frozen=True, slots=True)
class Settings:
    """The policy-wide settings beyond its roles."""

    mode: Mode = "enforce"
    workspaces: Mapping[str, Workspace] = field(default_factory=lambda: MappingProxyType({}))
    default_workspace: str | None = None
    allowed_org_ids: str | None = None
    """The ``anthropic-allowed-org-ids`` value every request carries (canonical, comma-separated)."""
    revoked: tuple[str, ...] = ()
    """Fingerprints of revoked keys."""
    strict: bool = False
    """The top-level ``strict``: the default of every role that does not set its own."""
    prices: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The policy's ``[prices."pattern"]`` changes to the shipped table, as written."""
    price_table: PriceTable | None = field(default=None, compare=False)
    """The prices in force: the shipped table with :attr:`prices` applied (``None``: the shipped one)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one policy decision. Truthy when allowed."""

    allowed: bool
    reason: str
    """``allowed``, ``clamped``, or the ``error_code`` of the denial."""
    role: str | None = None
    model: str | None = None
    max_tokens_requested: int | None = None
    max_tokens_effective: int | None = None
    message: str = ""
    fields: FieldValues = ()
    """The governed request-field values the request asked for (and ``unknown_fields``): the audit trail's."""

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def clamped(self) -> bool:
        return self.reason == "clamped"

    def with_fields(self, fields: FieldValues) -> Decision:
        """This decision carrying ``fields`` (the request-field values it judged)."""
        return Decision(
            self.allowed,
            self.reason,
            self.role,
            self.model,
            self.max_tokens_requested,
            self.max_tokens_effective,
            self.message,
            fields,
        )

    def denied(self, reason: str, message: str) -> Decision:
        """This decision turned into a denial for ``reason`` (a rate limit, a revoked key...), keeping its facts."""
        return Decision(
            False,
            reason,
            self.role,
            self.model,
            self.max_tokens_requested,
            self.max_tokens_effective,
            message,
            self.fields,
        )
