"""How a route narrows a role: :class:`Scope`, built from :class:`Narrowing`'s keywords and validated once, when
the route is declared; several guards on one request intersect their scopes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict

from ..errors import PolicyError, PolicyProblem
from ._grants import GRANT_KEYS, GrantMatchers, grant_problem
from ._model import FieldValues, as_patterns, min_cap
from ._patterns import ModelMatcher, describe_patterns, pattern_problem
from ._spend import NO_SPEND, Spend, micro_dollars
from ._values import MAX_TOKENS_CEILING, limit_problem

__all__ = ["UNRESTRICTED", "Narrowing", "Scope", "ScopeCache", "scope_name"]


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


class Narrowing(TypedDict, total=False):
    """The keywords that narrow a role on one route or client (``requires_role``'s, ``rbac.client``'s).

    Every adapter takes them as ``**narrowing`` and hands them on unread, so a new lever is added here and in
    :meth:`Scope.build` only. Each narrows, never widens: the role's own grant still applies.
    """

    models: Iterable[str] | str | None
    """Model names or patterns the route allows (within the role's)."""
    max_tokens: int | None
    """A lower ``max_tokens`` cap for the route."""
    rpm: int | None
    """A requests-per-minute limit of the route's own, per principal."""
    name: str | None
    """Labels the route's own RPM bucket (default: derived from the narrowing)."""
    tools: Iterable[str] | str | None
    mcp_servers: Iterable[str] | str | None
    service_tiers: Iterable[str] | str | None
    speeds: Iterable[str] | str | None
    inference_geos: Iterable[str] | str | None
    betas: Iterable[str] | str | None
    spend: Mapping[str, object] | None
    """A spend limit of the route's own per principal (``{"day": 0.50}``, US dollars), on top of the role's."""


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


class ScopeCache:
    """Scopes by their narrowing keywords, built and validated once each (bounded: 4,096 kinds of routes)."""

    __slots__ = ("_scopes",)
    _SIZE: Final = 4096

    def __init__(self) -> None:
        self._scopes: dict[tuple[Any, ...], Scope] = {}

    def get(self, narrowing: Mapping[str, Any]) -> Scope:
        """The scope of ``narrowing`` (:class:`Narrowing`'s keys); :class:`PolicyError` for a bad one."""
        given: dict[str, Any] = {name: _settled(value) for name, value in narrowing.items() if value is not None}
        key = tuple(sorted((name, _key_of(value)) for name, value in given.items()))
        scope = self._scopes.get(key)
        if scope is None:
            scope = Scope.build(**given)
            if len(self._scopes) < self._SIZE:
                self._scopes[key] = scope
        return scope


def _settled(value: object) -> object:
    """A narrowing value read once: a generator of names becomes a tuple, so the key and the scope see the same."""
    if isinstance(value, str | int | Mapping) or not isinstance(value, Iterable):
        return value
    return tuple(value)


def _key_of(value: object) -> object:
    """A narrowing value as a cache key (``spend={"day": 0.5}`` is a mapping)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), repr(v)) for k, v in value.items()))
    return value
