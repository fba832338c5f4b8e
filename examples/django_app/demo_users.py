"""The demo users as real Django users, each in a group named the way an organisation names its teams.

``GROUP_ROLES`` is the example's ``CLAUDE_RBAC["GROUP_ROLES"]``: the groups it trusts and the policy role each
grants. No group is named like a role (check ``claude_rbac.W005``), and a group it does not map grants nothing.
The users and groups come from :data:`examples.common.DEMO_USERS` (``CLAUDE_RBAC_DEMO_EXTRA_USERS`` included).

This module reads no settings of its own: the security suite seeds the same users into its test database.
"""

from __future__ import annotations

from typing import Any

from examples.common import DEMO_USERS

GROUP_ROLES = {
    "Readers": "viewer",
    "Support staff": "user",
    "Research": "power",
    "Platform admins": "admin",
}
"""Django group -> policy role (examples/rbac.toml's roles)."""


def group_for(role: str) -> str:
    """The group a demo user with ``role`` joins; a role no group grants is a ValueError (the app won't start)."""
    for group, granted in GROUP_ROLES.items():
        if granted == role:
            return group
    raise ValueError(f"no group of the Django example grants role {role!r}: it maps {GROUP_ROLES}")


def create_demo_users() -> list[Any]:
    """The groups, and each demo user in the group of its role (created when missing: this runs at every start).

    The demo users have no password (an unusable one): the example signs them in by name, a demo convenience.
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    groups = {name: Group.objects.get_or_create(name=name)[0] for name in GROUP_ROLES}
    model = get_user_model()
    users = []
    for username, role in DEMO_USERS.items():
        group = groups[group_for(role)]
        user = model.objects.filter(**{model.USERNAME_FIELD: username}).first()
        if user is None:
            user = model.objects.create_user(**{model.USERNAME_FIELD: username})  # no password: an unusable one
        user.groups.add(group)
        users.append(user)
    return users


def demo_user(username: object) -> Any:
    """The active demo user of that name, or None: only the demo's own users, never one created some other way."""
    from django.contrib.auth import get_user_model

    if not isinstance(username, str) or username not in DEMO_USERS:
        return None
    model = get_user_model()
    user = model.objects.filter(**{model.USERNAME_FIELD: username}).first()
    return user if user is not None and user.is_active else None


def delete_demo_users() -> None:
    """Remove the demo users and the example's groups (the security suite's test database shares them)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    model = get_user_model()
    model.objects.filter(**{f"{model.USERNAME_FIELD}__in": list(DEMO_USERS)}).delete()
    Group.objects.filter(name__in=list(GROUP_ROLES)).delete()
