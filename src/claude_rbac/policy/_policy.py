"""The compiled, immutable :class:`Policy` and the one decision function every adapter asks.

A policy is validated once, when it is loaded (:mod:`._compile`). :meth:`Policy.decide` answers "may
this principal call Claude with this model and max_tokens here?"; :meth:`Policy.authorize_role` is the
route guard's question. Both are pure: no counters, no spans, no network.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from ..errors import message_for
from ._compile import CompiledPolicy, compile_policy
from ._model import Decision, OnExcess, Principal, Role, Settings, min_cap
from ._price_schema import shipped_prices
from ._prices import PriceTable
from ._read import read_policy_file
from ._revision import content_revision
from ._scope import UNRESTRICTED, Scope
from ._values import check_max_tokens_value, check_model_value

__all__ = ["DEFAULT_POLICY", "Policy", "UnavailablePolicy"]

_MISSING: Any = object()
_DENIALS = 256
"""Memoised model denials per policy, at most."""


def _deny(reason: str, role: str | None, variant: str = "", *, model: str | None = None, **fields: object) -> Decision:
    message = message_for(reason, variant, role=role, model=model, **fields)
    return Decision(False, reason, role, model, message=message)


class Policy:
    """An immutable, compiled set of roles. Build one with :meth:`default`, :meth:`from_dict` or :meth:`from_file`."""

    __slots__ = ("_denials", "_frozen", "on_excess", "revision", "roles", "settings", "source")

    roles: Mapping[str, Role]
    on_excess: OnExcess
    source: str | None
    settings: Settings
    """Policy-wide settings beyond the roles: mode, workspaces, tenant restriction, revocations."""
    _denials: dict[tuple[str, str], Decision]
    revision: str
    """Which policy this is: the file's own ``revision``, else a short hash of the compiled document."""

    def __init__(
        self,
        roles: Mapping[str, Role],
        *,
        on_excess: OnExcess = "clamp",
        source: str | None = None,
        settings: Settings | None = None,
        revision: str | None = None,
    ) -> None:
        object.__setattr__(self, "roles", MappingProxyType(dict(roles)))
        object.__setattr__(self, "on_excess", on_excess)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "settings", settings or Settings())
        if revision is None:
            revision = content_revision({"on_excess": on_excess, "roles": self.roles, "settings": self.settings})
        object.__setattr__(self, "revision", revision)
        object.__setattr__(self, "_denials", {})
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
        """Validate and compile a policy document; :class:`~claude_rbac.PolicyError` lists every problem."""
        return cls._of(compile_policy(data, source=source), source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Policy:
        """Load a ``.toml``, ``.json`` or ``.yaml``/``.yml`` (with the ``yaml`` extra) policy file.

        A file must say which format version it is written in (``version = 1``) and define roles.
        """
        source = os.fspath(path)
        return cls._of(compile_policy(read_policy_file(source), source=source, require_version=True), source)

    @classmethod
    def _of(cls, compiled: CompiledPolicy, source: str | None) -> Policy:
        return cls(
            compiled.roles,
            on_excess=compiled.on_excess,
            source=source,
            settings=compiled.settings,
            revision=compiled.revision,
        )

    @property
    def prices(self) -> PriceTable:
        """The prices in force: the shipped table with the policy's ``[prices."pattern"]`` changes."""
        return self.settings.price_table or shipped_prices()

    # -- questions -------------------------------------------------------------------------------

    def role(self, name: object) -> Role | None:
        return self.roles.get(name) if isinstance(name, str) else None

    def has_role(self, principal: Principal | None, required: str) -> bool:
        """Whether ``principal``'s role is ``required`` or inherits from it (``power`` has ``user``)."""
        if principal is None:
            return False
        role = self.role(principal.role)
        return role is not None and role.includes(required)

    def authorize_role(self, principal: Principal | None, required: str) -> Decision:
        """The route guard's decision: signed in, with a role the policy knows, at or above ``required``."""
        if principal is None:
            return _deny("unauthenticated", None, "route")
        role_name = principal.role if isinstance(principal.role, str) else None
        if role_name is None:
            return _deny("role_insufficient", None, "no_role")
        role = self.roles.get(role_name)
        if role is None:
            return _deny("unknown_role", role_name)
        if not role.includes(required):
            return _deny("role_insufficient", role_name)
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
            return _deny("unauthenticated", None)
        role_name = principal.role if isinstance(principal.role, str) else None
        asked = model if isinstance(model, str) and model is not _MISSING else None
        if role_name is None:
            return _deny("api_access_not_allowed", None, "no_role", model=asked)
        role = self.roles.get(role_name)
        if role is None:
            return _deny("unknown_role", role_name, model=asked)
        if not role.allowed:
            return _deny("api_access_not_allowed", role_name, model=asked)

        model_name: str | None = None
        if model is not _MISSING:
            model_name = check_model_value(model)
            if not role.matcher(model_name):
                return self._model_denied(role_name, model_name)
            if scope.matcher is not None and not scope.matcher(model_name):
                return _deny(
                    "model_not_allowed", role_name, "route", model=model_name, patterns=scope.describe_models()
                )
        if max_tokens is _MISSING:
            return Decision(True, "allowed", role_name, model_name)

        requested = check_max_tokens_value(max_tokens)
        cap = min_cap(role.max_tokens, scope.max_tokens)
        if cap is None or requested <= cap:
            return Decision(True, "allowed", role_name, model_name, requested, requested)
        if self.on_excess == "reject":
            by_route = role.max_tokens is None or (scope.max_tokens is not None and scope.max_tokens < role.max_tokens)
            denied = _deny(
                "max_tokens_exceeded",
                role_name,
                "route" if by_route else "",
                model=model_name,
                requested=requested,
                limit=cap,
            )
            return Decision(False, denied.reason, role_name, model_name, requested, message=denied.message)
        return Decision(True, "clamped", role_name, model_name, requested, cap)

    def _model_denied(self, role: str, model: str) -> Decision:
        """The (frozen) denial of ``model`` to ``role``, memoised: formatting its message is most of a denial's cost.

        Bounded (the model name is the caller's), and it lives on this immutable policy, so a reload starts afresh.
        """
        denials = self._denials
        decision = denials.get((role, model))
        if decision is None:
            decision = _deny("model_not_allowed", role, model=model)
            if len(denials) >= _DENIALS:
                denials.clear()
            denials[role, model] = decision
        return decision


class UnavailablePolicy(Policy):
    """What a failed reload leaves in place: the same roles, every decision a 503 ``backend_unavailable``.

    A reload that fails must not leave the previous grants in force (the reload may have been a
    revocation), so claude_rbac fails closed until a good policy loads.
    """

    __slots__ = ()

    def _unavailable(self, principal: Principal | None) -> Decision:
        role = principal.role if principal is not None and isinstance(principal.role, str) else None
        return _deny("backend_unavailable", role)

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
