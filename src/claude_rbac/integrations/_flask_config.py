"""The Flask extension's configuration: its ``CLAUDE_RBAC_*`` keys, the default principal loader, and the
settings ``init_app`` reads from them (constructor arguments first)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from flask import current_app, session
from werkzeug.utils import import_string

from ..errors import PolicyError, RBACError
from ..policy import Policy, Principal
from ..rbac import RBAC
from ._kernel import PrincipalLoader, RateLimitStyle, check_rate_limit_style

if TYPE_CHECKING:
    from flask.typing import ResponseReturnValue

__all__ = ["CONFIG_KEYS", "DefaultPrincipalLoader", "OnDenied", "RoleLoader", "Settings", "read_settings"]

CONFIG_KEYS: Final = (
    "CLAUDE_RBAC_POLICY",
    "CLAUDE_RBAC_STORAGE",
    "CLAUDE_RBAC_KEY_PREFIX",
    "CLAUDE_RBAC_API_KEY",
    "CLAUDE_RBAC_API_KEY_ENV",
    "CLAUDE_RBAC_BASE_URL",
    "CLAUDE_RBAC_MODE",
    "CLAUDE_RBAC_ROLE_ATTRIBUTE",
    "CLAUDE_RBAC_ROLE_LOADER",
    "CLAUDE_RBAC_SESSION_USER_KEY",
    "CLAUDE_RBAC_ON_DENIED",
    "CLAUDE_RBAC_RULES",
    "CLAUDE_RBAC_RATE_LIMIT_HEADERS",
)
"""Every ``CLAUDE_RBAC_*`` config key the extension reads; any other is an error at ``init_app``."""

_REMOVED: Final = {
    "CLAUDE_RBAC_SESSION_ROLE_KEY": (
        "CLAUDE_RBAC_SESSION_ROLE_KEY is no longer read: a role kept in the session cookie outlives a demotion "
        "or a sign-out (the client keeps the cookie). Keep only the user id in the session and give "
        "ClaudeRBAC(role_loader=...) or CLAUDE_RBAC_ROLE_LOADER a function user_id -> role that asks your "
        "user store."
    ),
}

RoleLoader = Callable[[str], "str | None"]
"""``role_loader(user_id) -> role | None``: the role the app's own user store gives that user now."""
OnDenied = Callable[[RBACError], "ResponseReturnValue"]


@dataclass(frozen=True, slots=True)
class DefaultPrincipalLoader:
    """Who is signed in, from the server's side: Flask-Login's ``current_user``, else the session's user id.

    The id is ``current_user.get_id()`` (Flask-Login) or ``session[session_user_key]``. The role comes from
    ``role_loader(user_id)`` when the app gives one, else from Flask-Login's user (``role_attribute``), which
    its ``user_loader`` builds on the server for each request. A role in the session is never read: the
    signed cookie says who the user is, the server says what they may do. No role found: ``role=None``
    (guards answer 403).
    """

    role_attribute: str = "role"
    session_user_key: str = "user_id"
    role_loader: RoleLoader | None = None

    def __call__(self) -> Principal | None:
        role: object = None
        if hasattr(current_app, "login_manager"):
            from flask_login import current_user  # type: ignore[import-untyped]

            if not current_user.is_authenticated:
                return None
            user_id = current_user.get_id()
            if self.role_loader is None:
                role = getattr(current_user, self.role_attribute, None)
        else:
            user_id = session.get(self.session_user_key)
        if not isinstance(user_id, (str, int)) or isinstance(user_id, bool) or user_id == "":
            return None
        if self.role_loader is not None:
            role = self.role_loader(str(user_id))
        return Principal(id=str(user_id), role=role if isinstance(role, str) else None)


@dataclass(frozen=True, slots=True)
class Settings:
    """One app's settings, resolved: what its requests need."""

    rbac: RBAC
    principal_loader: PrincipalLoader
    on_denied: OnDenied | Literal["json", "abort"]
    rules: Mapping[str, str] | None
    rate_limit_headers: RateLimitStyle | None


def read_settings(
    config: Mapping[str, Any],
    *,
    rbac: RBAC | None,
    principal_loader: PrincipalLoader | None,
    role_loader: RoleLoader | None,
    on_denied: OnDenied | Literal["json", "abort"] | None,
    rules: Mapping[str, str] | None,
    rate_limit_headers: RateLimitStyle | None,
) -> Settings:
    """The settings of one app: constructor arguments win over config keys; raises for a bad key or value."""
    for key, why in _REMOVED.items():
        if key in config:
            raise ValueError(why)
    unknown = sorted(key for key in config if key.startswith("CLAUDE_RBAC_") and key not in CONFIG_KEYS)
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(unknown)}; known: {', '.join(CONFIG_KEYS)}")
    loader = principal_loader or DefaultPrincipalLoader(
        role_attribute=config.get("CLAUDE_RBAC_ROLE_ATTRIBUTE", "role"),
        session_user_key=config.get("CLAUDE_RBAC_SESSION_USER_KEY", "user_id"),
        role_loader=role_loader or _callable(config.get("CLAUDE_RBAC_ROLE_LOADER"), "CLAUDE_RBAC_ROLE_LOADER"),
    )
    return Settings(
        rbac=rbac or _rbac_from_config(config),
        principal_loader=loader,
        on_denied=_on_denied(on_denied or config.get("CLAUDE_RBAC_ON_DENIED", "json")),
        rules=rules if rules is not None else config.get("CLAUDE_RBAC_RULES"),
        rate_limit_headers=check_rate_limit_style(
            rate_limit_headers or config.get("CLAUDE_RBAC_RATE_LIMIT_HEADERS"), "CLAUDE_RBAC_RATE_LIMIT_HEADERS"
        ),
    )


def _rbac_from_config(config: Mapping[str, Any]) -> RBAC:
    api_key = config.get("CLAUDE_RBAC_API_KEY")
    key_env = config.get("CLAUDE_RBAC_API_KEY_ENV")
    if api_key is None and key_env:
        api_key = os.environ.get(key_env)
        if not api_key:
            raise PolicyError(f"CLAUDE_RBAC_API_KEY_ENV names {key_env!r}, which is not set")
    return RBAC(
        config.get("CLAUDE_RBAC_POLICY") or Policy.default(),
        storage=config.get("CLAUDE_RBAC_STORAGE") or "memory://",
        key_prefix=config.get("CLAUDE_RBAC_KEY_PREFIX") or "claude_rbac",
        api_key=api_key,
        base_url=config.get("CLAUDE_RBAC_BASE_URL"),
        mode=config.get("CLAUDE_RBAC_MODE"),
    )


def _callable(value: object, setting: str) -> Any:
    """``None``, a callable, or ``"package.module:name"`` naming one (e.g. from the environment)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = import_string(value)
    if not callable(value):
        raise ValueError(f"{setting} must be a callable or 'package.module:name', got {value!r}")
    return value


def _on_denied(value: object) -> OnDenied | Literal["json", "abort"]:
    if value in ("json", "abort"):
        return value
    try:
        chosen = _callable(value, "CLAUDE_RBAC_ON_DENIED")
    except ValueError:
        chosen = None
    if chosen is None:
        raise ValueError(f"CLAUDE_RBAC_ON_DENIED must be 'json', 'abort' or a callable, got {value!r}")
    return cast(OnDenied, chosen)
