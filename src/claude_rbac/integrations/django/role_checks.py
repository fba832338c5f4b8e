"""System checks on where the default principal loader takes roles from: ``claude_rbac.E008``,
``W005``-``W007``, and ``I001`` under ``manage.py check --deploy``. A ``PRINCIPAL_LOADER`` of the app's own
decides roles itself, so none of them apply to it.

The checks against the groups in the database follow Django's own database checks: they run only when Django
passes ``databases`` (``manage.py check --database default``, and ``migrate``, which runs them before it
creates the tables: a database without its tables yet is skipped, not an error).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model  # type: ignore[import-untyped]
from django.core import checks  # type: ignore[import-untyped]
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured  # type: ignore[import-untyped]
from django.db import DatabaseError  # type: ignore[import-untyped]

from .config import SETTING, Config
from .runtime import config_and_problems

__all__ = ["check_groups", "check_role_attribute", "check_role_sources"]


def _default_loader_config() -> Config | None:
    config = config_and_problems()[0]
    return config if config is not None and config.loader is None else None


def _user_model() -> Any:
    try:
        return get_user_model()
    except (ImproperlyConfigured, LookupError):  # no auth app: E007 already says the loader cannot work
        return None


def check_role_sources(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    config = _default_loader_config()
    if config is None:
        return []
    if config.superuser_role is None and config.role_attribute is None and not config.group_roles:
        return [
            checks.Warning(
                "The default principal loader gives no user a role: "
                f"settings.{SETTING} sets none of ROLE_ATTRIBUTE, GROUP_ROLES and SUPERUSER_ROLE, "
                "so every guard answers 403.",
                hint="Map the Django groups you trust, e.g. GROUP_ROLES = {'Support staff': 'user'}, or name the "
                "user attribute that holds a Claude role: ROLE_ATTRIBUTE = 'claude_role'.",
                id="claude_rbac.W007",
            )
        ]
    model = _user_model()
    if config.role_attribute is None or model is None or hasattr(model, config.role_attribute):
        return []
    return [
        checks.Error(
            f"settings.{SETTING}['ROLE_ATTRIBUTE'] is {config.role_attribute!r}, but the user model "
            f"{model._meta.label} has no such field or attribute: no user would get a role from it.",
            hint="Name a field or property of AUTH_USER_MODEL that holds a policy role name.",
            id="claude_rbac.E008",
        )
    ]


def check_role_attribute(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """I001, a deployment check (``manage.py check --deploy``): which user attribute grants roles."""
    config = _default_loader_config()
    model = _user_model()
    if config is None or config.role_attribute is None or model is None:
        return []
    return [
        checks.Info(
            f"claude_rbac reads each user's role from {model._meta.label}.{config.role_attribute} (ROLE_ATTRIBUTE); "
            "only values that name a policy role count, and no other attribute is read.",
            id="claude_rbac.I001",
        )
    ]


def _group_model() -> Any:
    model = _user_model()
    try:
        return model._meta.get_field("groups").related_model if model is not None else None
    except FieldDoesNotExist:
        return None


def check_groups(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Any]:
    """W005: groups named like a role that grant nothing; W006: ``GROUP_ROLES`` names a group that does not exist."""
    config = _default_loader_config()
    group_model = _group_model() if config is not None and databases else None
    if config is None or group_model is None:
        return []
    problems = []
    for alias in databases:
        try:
            names = set(group_model._default_manager.using(alias).values_list("name", flat=True))
        except DatabaseError:
            continue  # not migrated yet
        for name in sorted(names & set(config.policy.roles) - set(config.group_roles)):
            problems.append(
                checks.Warning(
                    f"The group {name!r} (database {alias!r}) is named like the policy role {name!r} but grants no "
                    "role: claude_rbac maps groups only through GROUP_ROLES.",
                    hint=f"If its members should have the role, add {name!r} to GROUP_ROLES; if anyone may name "
                    "groups (teams, customers), leave it unmapped and silence claude_rbac.W005.",
                    id="claude_rbac.W005",
                )
            )
        for name in sorted(set(config.group_roles) - names):
            problems.append(
                checks.Warning(
                    f"settings.{SETTING}['GROUP_ROLES'] maps the group {name!r}, "
                    f"which does not exist in database {alias!r}.",
                    hint="Check the spelling against the group names in Django's admin.",
                    id="claude_rbac.W006",
                )
            )
    return problems
