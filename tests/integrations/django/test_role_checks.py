"""The system checks on role sources: the settings, the user model, and the groups in the database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import run_checks

from claude_rbac.integrations.django.checks import TAG

from .project import GROUP_ROLES, USERS

ROOT = Path(__file__).resolve().parents[3]


def found(*, deploy: bool = False, databases: list[str] | None = None) -> list[Any]:
    return [
        message
        for message in run_checks(tags=[TAG], include_deployment_checks=deploy, databases=databases)
        if message.id.startswith("claude_rbac.")
    ]


def the_one(check_id: str, **kwargs: Any) -> Any:
    messages = found(**kwargs)
    assert [message.id for message in messages] == [check_id]
    return messages[0]


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        ({"GROUP_ROLES": ["user"]}, "['GROUP_ROLES'] must be a dict of Django group name -> policy role, got list"),
        ({"GROUP_ROLES": {"Support staff": 1}}, "['GROUP_ROLES'] must map group names to role names"),
        ({"ROLE_ATTRIBUTE": "profile.role"}, "['ROLE_ATTRIBUTE'] must be the name of a user attribute"),
        ({"ROLE_ATTRIBUTE": 3}, "['ROLE_ATTRIBUTE'] must be the name of a user attribute"),
    ],
)
def test_e001_malformed_role_settings(claude_settings: Any, setting: dict[str, Any], needle: str) -> None:
    claude_settings(**setting)
    assert needle in the_one("claude_rbac.E001").msg


def test_e003_group_roles_naming_a_role_the_policy_lacks(claude_settings: Any) -> None:
    claude_settings(GROUP_ROLES={USERS: "user", "Owners": "owner"})
    message = the_one("claude_rbac.E003")
    assert "['GROUP_ROLES']['Owners'] is 'owner', a role the policy does not have" in message.msg
    assert "viewer, user, power, admin" in message.hint


def test_e008_role_attribute_the_user_model_lacks(claude_settings: Any) -> None:
    claude_settings(ROLE_ATTRIBUTE="claude_rol")
    message = the_one("claude_rbac.E008")
    assert "'claude_rol', but the user model testapp.Member has no such field" in message.msg


def test_i001_says_which_attribute_is_read_in_the_deploy_checks(claude_settings: Any) -> None:
    assert found() == []  # not on every runserver
    message = the_one("claude_rbac.I001", deploy=True)
    assert "from testapp.Member.claude_role (ROLE_ATTRIBUTE)" in message.msg
    assert "no other attribute is read" in message.msg
    claude_settings(ROLE_ATTRIBUTE=None)
    assert found(deploy=True) == []


def test_w007_the_default_loader_without_any_role_source(claude_settings: Any) -> None:
    claude_settings(ROLE_ATTRIBUTE=None, GROUP_ROLES=None)
    message = the_one("claude_rbac.W007")
    assert "sets none of ROLE_ATTRIBUTE, GROUP_ROLES and SUPERUSER_ROLE" in message.msg
    assert "GROUP_ROLES = {'Support staff': 'user'}" in message.hint
    claude_settings(ROLE_ATTRIBUTE=None, GROUP_ROLES=None, SUPERUSER_ROLE="admin")
    assert found() == []
    claude_settings(ROLE_ATTRIBUTE=None, GROUP_ROLES=None, PRINCIPAL_LOADER="tests.integrations.django.project.api_key")
    assert found() == []  # a loader of the app's own decides roles itself


def test_w004_roles_from_groups_says_what_to_do(claude_settings: Any) -> None:
    claude_settings(GROUP_ROLES=None, ROLES_FROM_GROUPS=True)
    message = the_one("claude_rbac.W004")
    assert "anyone who may create or rename a group" in message.msg
    assert "GROUP_ROLES = {" in message.hint
    claude_settings(ROLES_FROM_GROUPS=False)
    assert "deprecated and ignored" in the_one("claude_rbac.W004").msg


def test_group_checks_need_databases_like_djangos_own(claude_settings: Any, make_user: Any) -> None:
    make_user(groups=["admin", *GROUP_ROLES])
    assert found() == []  # plain manage.py check never queries the database
    message = the_one("claude_rbac.W005", databases=["default"])
    assert "The group 'admin' (database 'default') is named like the policy role 'admin' but grants no role" in (
        message.msg
    )
    claude_settings(GROUP_ROLES={**GROUP_ROLES, "admin": "admin"})  # mapped on purpose: nothing to say
    assert found(databases=["default"]) == []


def test_w006_group_roles_naming_a_missing_group(claude_settings: Any, make_user: Any) -> None:
    make_user(groups=list(GROUP_ROLES))
    claude_settings(GROUP_ROLES={**GROUP_ROLES, "Support stafff": "user"})
    message = the_one("claude_rbac.W006", databases=["default"])
    assert "maps the group 'Support stafff', which does not exist in database 'default'" in message.msg


FRESH_SETTINGS = """
SECRET_KEY = "fresh-database-check"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "claude_rbac.integrations.django"]
MIDDLEWARE = ["django.contrib.auth.middleware.AuthenticationMiddleware",
              "claude_rbac.integrations.django.RBACMiddleware"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": %r}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
CLAUDE_RBAC = {"API_KEY": {"env": "FRESH_KEY"}, "GROUP_ROLES": {"Support staff": "user"}}
"""


def test_migrate_on_a_fresh_database_runs_the_group_checks_before_the_tables_exist(tmp_path: Path) -> None:
    """``migrate`` runs the database checks first, on a database without tables: they must not fail it."""
    (tmp_path / "fresh_settings.py").write_text(FRESH_SETTINGS % str(tmp_path / "db.sqlite3"), encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "fresh_settings",
        "FRESH_KEY": "sk-ant-placeholder-for-the-check",
    }

    def django(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "django", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)

    migrated = django("migrate", "--verbosity", "1")
    assert migrated.returncode == 0, migrated.stderr
    assert "Applying auth.0001_initial... OK" in migrated.stdout
    checked = django("check", "--database", "default")
    assert checked.returncode == 0, checked.stderr
    assert "(claude_rbac.W006) settings.CLAUDE_RBAC['GROUP_ROLES'] maps the group 'Support staff'" in checked.stderr
