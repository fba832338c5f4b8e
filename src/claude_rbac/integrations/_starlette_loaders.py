"""Starlette's default principal loader: who from the request, the role from the server (never the session)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Final

from starlette.requests import HTTPConnection
from starlette.types import Scope

from ..policy import Principal

__all__ = ["NO_SESSION_ROLE", "RoleLoader", "scope_loader", "session_or_user_loader"]

RoleLoader = Callable[[str], "Awaitable[str | None] | str | None"]
"""``role_loader(user_id) -> role | None`` (sync or async): the role the app's own user store gives that user now."""

NO_SESSION_ROLE: Final = (
    "session_keys= is gone: a role kept in the session cookie outlives a demotion or a sign-out (the client "
    "keeps the cookie). Keep only the user id in the session (session_key='user_id') and pass "
    "role_loader=, a function user_id -> role that asks your user store."
)


def session_or_user_loader(
    *,
    role_attribute: str = "role",
    session_key: str = "user_id",
    role_loader: RoleLoader | None = None,
    session_keys: None = None,
) -> Callable[[HTTPConnection], Principal | Awaitable[Principal | None] | None]:
    """The default principal loader: who from the request, the role from the server.

    * who: ``request.user`` from Starlette's ``AuthenticationMiddleware`` when authenticated (its
      ``identity``), else ``session[session_key]`` of the signed session (``SessionMiddleware``);
    * the role: ``role_loader(user_id)`` when given (sync or async), else the ``role_attribute`` attribute of
      ``request.user``, which the app's authentication backend sets on the server for each connection.

    A role in the session is never read: the signed cookie is the client's to keep and replay, so it may
    say who the user is, never what they may do. No role found: ``role=None`` (guards answer 403).
    """
    if session_keys is not None:
        raise TypeError(NO_SESSION_ROLE)
    from_scope = scope_loader(role_attribute, session_key, role_loader)

    def load(connection: HTTPConnection) -> Principal | Awaitable[Principal | None] | None:
        return from_scope(connection.scope)

    return load


def scope_loader(
    role_attribute: str, session_key: str, role_loader: RoleLoader | None
) -> Callable[[Scope], Principal | Awaitable[Principal | None] | None]:
    def load(scope: Scope) -> Principal | Awaitable[Principal | None] | None:
        user = scope.get("user")
        role: object = None
        if user is not None and getattr(user, "is_authenticated", False):
            user_id: object = user.identity
            if role_loader is None:
                role = getattr(user, role_attribute, None)
        else:
            session = scope.get("session")
            user_id = session.get(session_key) if session else None
        if not isinstance(user_id, (str, int)) or isinstance(user_id, bool) or user_id == "":
            return None
        if role_loader is not None:
            role = role_loader(str(user_id))
            if inspect.isawaitable(role):
                return _with_role(str(user_id), role)
        return Principal(str(user_id), role if isinstance(role, str) else None)

    load.__qualname__ = "session_or_user_loader"
    return load


async def _with_role(user_id: str, role: Awaitable[object]) -> Principal:
    found = await role
    return Principal(user_id, found if isinstance(found, str) else None)
