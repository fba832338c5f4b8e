"""The default principal resolver: the signed-in Django user, and the role the settings say they hold.

Roles come only from sources the settings name, in this order: ``SUPERUSER_ROLE`` for a superuser, the
user attribute ``ROLE_ATTRIBUTE`` names (when its value is a policy role), else the most privileged role
``GROUP_ROLES`` maps one of the user's groups to. A group's name alone grants nothing, and neither does an
attribute the settings do not name (a ``role`` field meaning something else in the app). With none of them
set, a signed-in user has no role (403 on every guard). An anonymous user is ``None`` (401).
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
    if config.role_attribute is None:
        return None
    role = getattr(user, config.role_attribute, None)
    return role if isinstance(role, str) and role in config.policy.roles else None


def _groups_query(user: Any, config: Config) -> Any:
    if not config.group_roles or not hasattr(user, "groups"):
        return None
    # All the user's group names, mapped here: a plain query compiles faster than a ``name__in`` one.
    return user.groups.values_list("name", flat=True)


def _group_role(config: Config, names: Iterable[str]) -> str | None:
    mapped = {config.group_roles[name] for name in names if name in config.group_roles}
    return most_privileged(config.policy, mapped)


def _principal(user: Any, role: str | None) -> Principal:
    return Principal(id=str(user.pk), role=role)


def principal_from_user(request: Any) -> Principal | None:
    """``request.user`` as a :class:`~claude_rbac.Principal` (sync code)."""
    user = request.user
    if not user.is_authenticated:
        return None
    config = get_config()
    role = _own_role(user, config)
    if role is None:
        query = _groups_query(user, config)
        role = _group_role(config, list(query) if query is not None else ())
    return _principal(user, role)


async def aprincipal_from_user(request: Any) -> Principal | None:
    """``await request.auser()`` as a :class:`~claude_rbac.Principal` (async code, with the async ORM API).

    The same answer as :func:`principal_from_user`, for ``async def`` loaders of your own that build on it.
    """
    user = await request.auser()
    if not user.is_authenticated:
        return None
    config = get_config()
    role = _own_role(user, config)
    if role is None:
        query = _groups_query(user, config)
        role = _group_role(config, [name async for name in query] if query is not None else ())
    return _principal(user, role)
