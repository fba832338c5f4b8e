"""Who may do what: principals, roles, the compiled policy and the one decision function.

A :class:`Policy` is immutable and validated once, when it is loaded (see :mod:`claude_rbac.policy_schema`).
Every adapter, route guard and client call asks :meth:`Policy.decide` and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from .errors import InvalidRequest
from .patterns import MAX_MODEL_NAME, ModelMatcher

__all__ = ["MAX_TOKENS_CEILING", "Decision", "Policy", "Principal", "Role", "Scope"]

MAX_TOKENS_CEILING: Final = 1_048_576
"""No request may ask for more output tokens than this, capped role or not."""

OnExcess = Literal["clamp", "reject"]


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
    workspace: str | None = None
    mode: Literal["enforce", "shadow"] | None = None
    matcher: ModelMatcher = field(default_factory=lambda: ModelMatcher(()), repr=False, compare=False)

    def allows_model(self, model: str) -> bool:
        return self.matcher(model)


@dataclass(frozen=True, slots=True)
class Scope:
    """What one route narrows a role to. It can only narrow: the role's grants still apply."""

    name: str = ""
    models: tuple[str, ...] | None = None
    max_tokens: int | None = None
    rpm: int | None = None
    matcher: ModelMatcher | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        *,
        models: tuple[str, ...] | list[str] | str | None = None,
        max_tokens: int | None = None,
        rpm: int | None = None,
        name: str | None = None,
    ) -> Scope:
        from .policy_schema import check_scope

        models_tuple = as_patterns(models)
        check_scope(models_tuple, max_tokens, rpm)
        if name is None:
            name = scope_name(models_tuple, max_tokens, rpm)
        matcher = ModelMatcher(models_tuple) if models_tuple is not None else None
        return cls(name=name, models=models_tuple, max_tokens=max_tokens, rpm=rpm, matcher=matcher)

    @property
    def narrows(self) -> bool:
        return self.models is not None or self.max_tokens is not None or self.rpm is not None


def as_patterns(models: Iterable[str] | str | None) -> tuple[str, ...] | None:
    """A route's ``models=`` argument (one pattern, several, or ``None`` for no narrowing) as a tuple."""
    if models is None:
        return None
    return (models,) if isinstance(models, str) else tuple(models)


def scope_name(models: tuple[str, ...] | None, max_tokens: int | None, rpm: int | None) -> str:
    if models is None and max_tokens is None and rpm is None:
        return ""
    return f"models={','.join(models or ())};max_tokens={max_tokens};rpm={rpm}"


UNRESTRICTED: Final = Scope()


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

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def clamped(self) -> bool:
        return self.reason == "clamped"


_MISSING: Any = object()


def _deny(reason: str, message: str, role: str | None, **kwargs: Any) -> Decision:
    return Decision(False, reason, role, message=message, **kwargs)


def check_model_value(model: object) -> str:
    if not isinstance(model, str):
        raise InvalidRequest(f"model must be a string, got {type(model).__name__}.")
    if not model or len(model) > MAX_MODEL_NAME:
        raise InvalidRequest(f"model must be a non-empty string of at most {MAX_MODEL_NAME} characters.")
    return model


def check_max_tokens_value(max_tokens: object) -> int:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise InvalidRequest(f"max_tokens must be an integer, got {type(max_tokens).__name__}.")
    if not 1 <= max_tokens <= MAX_TOKENS_CEILING:
        raise InvalidRequest(f"max_tokens must be between 1 and {MAX_TOKENS_CEILING}, got {max_tokens}.")
    return max_tokens


class Policy:
    """An immutable, compiled set of roles. Build one with :meth:`default`, :meth:`from_dict` or :meth:`from_file`."""

    __slots__ = ("_frozen", "on_excess", "raw", "roles", "settings", "source")

    roles: Mapping[str, Role]
    on_excess: OnExcess
    source: str | None
    settings: Mapping[str, Any]
    """Top-level settings beyond the roles (workspaces, tenant restriction, revocations, mode)."""
    raw: Mapping[str, Any]

    def __init__(
        self,
        roles: Mapping[str, Role],
        *,
        on_excess: OnExcess = "clamp",
        source: str | None = None,
        settings: Mapping[str, Any] | None = None,
        raw: Mapping[str, Any] | None = None,
    ) -> None:
        object.__setattr__(self, "roles", MappingProxyType(dict(roles)))
        object.__setattr__(self, "on_excess", on_excess)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "settings", MappingProxyType(dict(settings or {})))
        object.__setattr__(self, "raw", MappingProxyType(dict(raw or {})))
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Policy is immutable; load a new one instead")

    def __repr__(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return f"<Policy{where}: roles={list(self.roles)} on_excess={self.on_excess!r}>"

    # -- loading ---------------------------------------------------------------------------------

    @classmethod
    def default(cls) -> Policy:
        """The enterprise guide's roles: viewer < user < power < admin."""
        return cls.from_dict(DEFAULT_POLICY, source="<default policy>")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> Policy:
        from .policy_schema import compile_policy

        return compile_policy(data, source=source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Policy:
        """Load a ``.toml``, ``.json`` or ``.yaml``/``.yml`` (with the ``yaml`` extra) policy file."""
        from .policy_schema import read_policy_file

        return cls.from_dict(read_policy_file(path), source=os.fspath(path))

    # -- questions -------------------------------------------------------------------------------

    def role(self, name: object) -> Role | None:
        return self.roles.get(name) if isinstance(name, str) else None

    def has_role(self, principal: Principal | None, required: str) -> bool:
        """Whether ``principal``'s role is ``required`` or inherits from it (``power`` has ``user``)."""
        if principal is None:
            return False
        role = self.role(principal.role)
        return role is not None and (role.name == required or required in role.ancestors)

    def authorize_role(self, principal: Principal | None, required: str) -> Decision:
        """The route guard's decision: signed in, and at or above ``required`` in the hierarchy."""
        if principal is None:
            return _deny("unauthenticated", "Sign in to use this page.", None)
        role_name = principal.role if isinstance(principal.role, str) else None
        if not self.has_role(principal, required):
            return _deny("role_insufficient", f"Role {role_name!r} may not use this page.", role_name)
        return Decision(True, "allowed", role_name)

    def decide(
        self,
        principal: Principal | None,
        *,
        model: object = _MISSING,
        max_tokens: object = _MISSING,
        scope: Scope = UNRESTRICTED,
    ) -> Decision:
        """The one decision function: may ``principal`` call Claude with this model and max_tokens?

        Pure: no counters, no spans. Bad values (a float max_tokens, a model that is not a string)
        raise :class:`~claude_rbac.errors.InvalidRequest`, which is also a ``ValueError``.
        """
        if principal is None:
            return _deny("unauthenticated", "Sign in to use Claude.", None)
        role = self.role(principal.role)
        role_name = principal.role if isinstance(principal.role, str) else None
        if role is None or not role.allowed:
            asked = model if isinstance(model, str) and model is not _MISSING else None
            return _deny(
                "api_access_not_allowed", f"Role {role_name!r} may not use the Claude API.", role_name, model=asked
            )

        model_name: str | None = None
        if model is not _MISSING:
            model_name = check_model_value(model)
            if not role.matcher(model_name) or (scope.matcher is not None and not scope.matcher(model_name)):
                return _deny(
                    "model_not_allowed",
                    f"Role {role_name!r} may not use model {model_name!r}.",
                    role_name,
                    model=model_name,
                )
        if max_tokens is _MISSING:
            return Decision(True, "allowed", role_name, model_name)

        requested = check_max_tokens_value(max_tokens)
        cap = _min_cap(role.max_tokens, scope.max_tokens)
        if cap is None or requested <= cap:
            return Decision(True, "allowed", role_name, model_name, requested, requested)
        if self.on_excess == "reject":
            return _deny(
                "max_tokens_exceeded",
                f"max_tokens {requested} is above the limit for role {role_name!r}.",
                role_name,
                model=model_name,
                max_tokens_requested=requested,
            )
        return Decision(True, "clamped", role_name, model_name, requested, cap)

    def rpm_for(self, role: Role, scope: Scope) -> int | None:
        return _min_cap(role.rpm, scope.rpm)


def _min_cap(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


class UnavailablePolicy(Policy):
    """What a failed reload leaves in place: the same roles, every decision a 503 ``backend_unavailable``.

    A reload that fails must not leave the previous grants in force (the reload may have been a
    revocation), so claude_rbac fails closed until a good policy loads.
    """

    __slots__ = ()

    def _unavailable(self, principal: Principal | None) -> Decision:
        role = principal.role if principal is not None and isinstance(principal.role, str) else None
        return _deny("backend_unavailable", "Access control is temporarily unavailable.", role)

    def authorize_role(self, principal: Principal | None, required: str) -> Decision:
        return self._unavailable(principal)

    def decide(
        self,
        principal: Principal | None,
        *,
        model: object = _MISSING,
        max_tokens: object = _MISSING,
        scope: Scope = UNRESTRICTED,
    ) -> Decision:
        return self._unavailable(principal)

    def has_role(self, principal: Principal | None, required: str) -> bool:
        return False


DEFAULT_POLICY: Final[Mapping[str, Any]] = {
    "version": 1,
    "on_excess": "clamp",
    "roles": {
        "viewer": {"allowed": False, "description": "Guarded pages only, no Claude API."},
        "user": {"inherits": ["viewer"], "models": ["claude-haiku-*"], "max_tokens": 512, "rpm": 10},
        "power": {
            "inherits": ["user"],
            "models": ["claude-sonnet-*", "claude-opus-*"],
            "max_tokens": 4096,
            "rpm": 60,
        },
        "admin": {"inherits": ["power"], "max_tokens": 8192, "rpm": 200},
    },
}
