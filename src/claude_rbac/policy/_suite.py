"""Policy tests: a TOML suite of cases beside the policy, each decided by the function the runtime runs.

```toml
policy = "rbac.toml"                    # optional: default, the suite's name without "_test"

[[case]]
name = "a user's max_tokens is clamped to its cap"
role = "user"
scope = { models = ["claude-haiku-*"], max_tokens = 1000 }    # optional: the route's requires_role(...)
                                        # (also tools, mcp_servers, service_tiers, speeds, inference_geos, betas)
request = { model = "claude-haiku-4-5", max_tokens = 4000 }    # the body the SDK would send
expect = { decision = "allow", reason = "clamped", max_tokens = 512 }
```

``claude-rbac test`` and the pytest plugin read suites with :func:`read_suite` and run each case with
:func:`run_case`, which asks :func:`~._probe.probe`, that is :func:`~._request.plan_call`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Final, Literal

from ..errors import REASONS, PolicyError
from ._grants import GRANT_KEYS
from ._model import Decision, Principal
from ._policy import Policy
from ._probe import OPERATION_ENDPOINTS, probe
from ._scope import UNRESTRICTED, Scope
from ._workspaces import redact

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["Case", "Expectation", "Outcome", "Suite", "SuiteError", "read_suite", "run_case", "suite_policy_path"]

SUITE_KEYS: Final = frozenset({"version", "policy", "case"})
CASE_KEYS: Final = frozenset({"name", "role", "operation", "scope", "request", "expect"})
SCOPE_KEYS: Final = frozenset({"models", "max_tokens", *GRANT_KEYS})
EXPECT_KEYS: Final = frozenset({"decision", "reason", "max_tokens"})
DECISIONS: Final = ("allow", "deny")
_CASE_HEADER = re.compile(r"^\s*\[\[\s*case\s*\]\]", re.M)
Status = Literal["pass", "fail", "error"]


class SuiteError(ValueError):
    """A suite file that cannot be read: not TOML, no cases, an unknown top-level key."""


@dataclass(frozen=True, slots=True)
class Expectation:
    decision: str | None = None
    reason: str | None = None
    max_tokens: int | None = None

    def describe(self) -> str:
        parts = [self.decision or "any decision"]
        if self.reason is not None:
            parts.append(f"({self.reason})")
        if self.max_tokens is not None:
            parts.append(f"max_tokens {self.max_tokens}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Case:
    """One case as written; ``problems`` says why it cannot run (an unknown field, a bad value)."""

    name: str
    role: str | None
    request: Mapping[str, Any]
    expect: Expectation
    operation: str = "messages.create"
    scope: Scope = UNRESTRICTED
    line: int | None = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Suite:
    path: str
    cases: tuple[Case, ...]
    policy: str | None = None
    """The policy file the suite names (``policy = "..."``), relative to the suite's directory."""


@dataclass(frozen=True, slots=True)
class Outcome:
    case: Case
    status: Status
    decision: Decision | None = None
    detail: str = ""

    @property
    def got(self) -> str:
        """What the policy decided, in the words of an expectation."""
        decision = self.decision
        if decision is None:
            return ""
        text = f"{'allow' if decision.allowed else 'deny'} ({decision.reason})"
        if decision.allowed and decision.max_tokens_effective is not None:
            text += f" max_tokens {decision.max_tokens_effective}"
        return text


@cache
def known_request_fields(operation: str) -> frozenset[str]:
    """The body fields the installed anthropic SDK can send to the operation's endpoint (stable and beta)."""
    from anthropic.types import message_count_tokens_params, message_create_params
    from anthropic.types.beta import message_count_tokens_params as beta_count_tokens_params
    from anthropic.types.beta import message_create_params as beta_create_params
    from anthropic.types.messages import batch_create_params

    modules = {
        "messages.create": (message_create_params, beta_create_params),
        "messages.count_tokens": (message_count_tokens_params, beta_count_tokens_params),
        "messages.batches.create": (batch_create_params,),
    }[operation]
    fields: set[str] = set()
    for module in modules:
        for value in vars(module).values():
            # The SDK's TypedDicts come from typing_extensions: recognised by their key sets.
            if isinstance(value, type) and value.__module__ == module.__name__ and "Params" in value.__name__:
                fields.update(getattr(value, "__required_keys__", ()), getattr(value, "__optional_keys__", ()))
    return frozenset(fields)


def _unknown(keys: Mapping[str, Any], known: frozenset[str], where: str) -> list[str]:
    expected = ", ".join(sorted(known))
    return [f"{where}: unknown key {redact(key)} (expected {expected})" for key in keys if key not in known]


def _expectation(value: object, problems: list[str]) -> Expectation:
    if not isinstance(value, Mapping) or not value:
        problems.append('expect: must be a table such as { decision = "allow", reason = "allowed" }')
        return Expectation()
    problems.extend(_unknown(value, EXPECT_KEYS, "expect"))
    decision, reason, max_tokens = value.get("decision"), value.get("reason"), value.get("max_tokens")
    if decision is not None and decision not in DECISIONS:
        problems.append(f"expect.decision: must be 'allow' or 'deny', got {redact(decision)}")
    known_reasons = ("allowed", "clamped", *REASONS)
    if reason is not None and reason not in known_reasons:
        problems.append(f"expect.reason: unknown reason {redact(reason)} (known: {', '.join(known_reasons)})")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
        problems.append(f"expect.max_tokens: must be an integer, got {type(max_tokens).__name__}")
    if decision is None and reason is None and max_tokens is None:
        problems.append("expect: name a decision, a reason or a max_tokens")
    return Expectation(
        decision if isinstance(decision, str) else None,
        reason if isinstance(reason, str) else None,
        max_tokens if isinstance(max_tokens, int) else None,
    )


def _scope(value: object, problems: list[str]) -> Scope:
    if value is None:
        return UNRESTRICTED
    if not isinstance(value, Mapping):
        problems.append("scope: must be a table such as { models = [...], max_tokens = 1000 }")
        return UNRESTRICTED
    problems.extend(_unknown(value, SCOPE_KEYS, "scope"))
    try:
        fields = {key: value[key] for key in GRANT_KEYS if key in value}
        return Scope.build(models=value.get("models"), max_tokens=value.get("max_tokens"), **fields)
    except PolicyError as exc:
        problems.extend(f"scope.{problem.field}: {problem.message}" for problem in exc.problems)
    except TypeError:
        problems.append("scope: models and the field grants must be a pattern or a list of patterns")
    return UNRESTRICTED


def _case(index: int, raw: object, line: int | None) -> Case:
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        return Case(f"case {index + 1}", None, {}, Expectation(), line=line, problems=("a case must be a table",))
    problems.extend(_unknown(raw, CASE_KEYS, "case"))
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("name: every case needs a name (a non-empty string)")
        name = f"case {index + 1}"
    role = raw.get("role")
    if not isinstance(role, str):
        problems.append("role: the role making the call (a string) is required")
        role = None
    operation = raw.get("operation", "messages.create")
    if operation not in OPERATION_ENDPOINTS:
        problems.append(f"operation: must be one of {', '.join(OPERATION_ENDPOINTS)}, got {redact(operation)}")
        operation = "messages.create"
    request = raw.get("request")
    if not isinstance(request, Mapping):
        problems.append("request: the body the SDK would send, a table such as { model = ..., max_tokens = ... }")
        request = {}
    else:
        known = known_request_fields(operation)
        unknown = [key for key in request if key not in known]
        problems.extend(f"request: unknown field {redact(key)} ({operation} sends no such field)" for key in unknown)
    expect = _expectation(raw.get("expect"), problems)
    scope = _scope(raw.get("scope"), problems)
    return Case(name, role, dict(request), expect, operation, scope, line, tuple(problems))


def read_suite(path: str | os.PathLike[str]) -> Suite:
    """Read a suite file. :class:`SuiteError` when the file itself is wrong; a wrong case carries its problems."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as fh:
            text = fh.read().decode("utf-8")
        data = tomllib.loads(text)
    except OSError as exc:
        raise SuiteError(f"{source}: cannot read the suite: {exc.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SuiteError(f"{source}: cannot parse the suite: {redact(str(exc)).strip(chr(39))}") from None
    problems = _unknown(data, SUITE_KEYS, "suite")
    if data.get("version", 1) != 1:
        problems.append("version: this release reads suite version 1")
    policy = data.get("policy")
    if policy is not None and not isinstance(policy, str):
        problems.append("policy: must be the path of the policy file")
    raw_cases = data.get("case")
    if not isinstance(raw_cases, list) or not raw_cases:
        problems.append("no cases: add at least one [[case]] table")
    if problems:
        raise SuiteError("\n".join(f"{source}: {problem}" for problem in problems))
    assert isinstance(raw_cases, list)
    lines = [text.count("\n", 0, match.start()) + 1 for match in _CASE_HEADER.finditer(text)]
    if len(lines) != len(raw_cases):
        lines = []
    cases = [_case(index, raw, lines[index] if lines else None) for index, raw in enumerate(raw_cases)]
    seen: set[str] = set()
    for index, case in enumerate(cases):
        if case.name in seen:
            cases[index] = replace(case, problems=(*case.problems, "name: another case has this name"))
        seen.add(case.name)
    return Suite(source, tuple(cases), policy)


def suite_policy_path(suite_path: str | os.PathLike[str], declared: str | None = None) -> str:
    """The policy a suite tests: the one it names, else its sibling without ``_test`` (``rbac_test.toml``
    tests ``rbac.toml``, or ``rbac.yaml``/``.yml``/``.json`` when that is what exists)."""
    source = os.fspath(suite_path)
    directory = os.path.dirname(source)
    if declared is not None:
        return os.path.join(directory, declared)
    stem = os.path.basename(source).removesuffix(".toml").removesuffix("_test")
    candidates = [os.path.join(directory, f"{stem}{suffix}") for suffix in (".toml", ".yaml", ".yml", ".json")]
    return next((candidate for candidate in candidates if os.path.exists(candidate)), candidates[0])


def run_case(policy: Policy, case: Case) -> Outcome:
    """Decide the case as a governed client would, and compare with what it expects."""
    if case.problems:
        return Outcome(case, "error", detail="; ".join(case.problems))
    if case.role not in policy.roles and case.expect.reason != "unknown_role":
        detail = f"the policy has no role {case.role!r} (roles: {', '.join(policy.roles) or 'none'})"
        return Outcome(case, "error", detail=detail + '; expect reason = "unknown_role" to test an unknown role')
    principal = Principal("policy-test", case.role)
    decision = probe(policy, principal, case.request, scope=case.scope, operation=case.operation).decision
    expect = case.expect
    mismatches = []
    if expect.decision is not None and expect.decision != ("allow" if decision.allowed else "deny"):
        mismatches.append("decision")
    if expect.reason is not None and expect.reason != decision.reason:
        mismatches.append("reason")
    if expect.max_tokens is not None and expect.max_tokens != decision.max_tokens_effective:
        mismatches.append("max_tokens")
    if not mismatches:
        return Outcome(case, "pass", decision)
    return Outcome(case, "fail", decision, detail=f"{', '.join(mismatches)} differ")
