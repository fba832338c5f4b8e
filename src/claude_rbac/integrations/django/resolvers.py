"""The default principal resolver: the signed-in Django user, and the role their account carries.

The role is, in this order: ``SUPERUSER_ROLE`` for a superuser (when configured), the user's own
``role`` field (when the user model has one and it is set), else the most privileged policy role
among the user's Django groups (when ``ROLES_FROM_GROUPS``). An anonymous user is ``None`` (401).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from ...policy import Policy, Principal
from .config import Config
from .runtime import get_config

__all__ = ["aprincipal_from_user", "most_privileged", "principal_from_user"]


def most_privileged(policy: Policy, names: Collection[str]) -> str | None:
    """The held role no other held role inherits from; among unrelated ones, the one listed last in the policy.

    Policies list roles from least to most privileged (``viewer``, ``user``, ``power``, ``admin``).
    """
    held = [role for name, role in policy.roles.items() if name in names]
    top = [role for role in held if not any(role.name in other.ancestors for other in held)]
    return top[-1].name if top else None


def _own_role(user: Any, config: Config) -> str | None:
    if config.superuser_role is not None and getattr(user, "is_superuser", False):
        return config.superuser_role
    role = getattr(user, "role", None)
    return role if isinstance(role, str) and role else None


def _groups_query(user: Any, config: Config) -> Any:
    if not config.roles_from_groups or not hasattr(user, "groups"):
        return None
    # All the user's group names, filtered here: a plain query compiles faster than a ``name__in`` one.
    return user.groups.values_list("name", flat=True)


def _principal(user: Any, role: str | None) -> Principal:
    return Principal(id=str(user.pk), role=role)


def principal_from_user(request: Any) -> Principal | None:
    """``request.user`` as a :class:`~claude_rbac.Principal` (sync requests)."""
    user = request.user
    if not user.is_authenticated:
        return None
    config = get_config()
    role = _own_role(user, config)
    if role is None:
        query = _groups_query(user, config)
        names: Iterable[str] = list(query) if query is not None else ()
        role = most_privileged(config.policy, set(names))
    return _principal(user, role)


async def aprincipal_from_user(request: Any) -> Principal | None:
    """``await request.auser()`` as a :class:`~claude_rbac.Principal` (async requests, with the async ORM API)."""
    user = await request.auser()
    if not user.is_authenticated:
        return None
    config = get_config()
    role = _own_role(user, config)
    if role is None:
        query = _groups_query(user, config)
        names = {name async for name in query} if query is not None else set()
        role = most_privileged(config.policy, names)
    return _principal(user, role)
