"""Where a signed-in user's role comes from: only the sources the settings name, through an explicit mapping.

A group's name grants nothing by itself (a staff user renaming a group, a customer naming a team "admin"),
and neither does a ``role`` field that means something else in the app.
"""

from __future__ import annotations

from typing import Any

import pytest

from claude_rbac.testing import FakeClaude

from .project import ADMINS, HAIKU, OPUS, POWER_USERS, USERS, VIEWERS
from .support import error_of, login, post

NO_ROLE = {
    "type": "permission_error",
    "message": "The signed-in user has no role.",
    "error_code": "role_insufficient",
}


def role_of(client: Any) -> Any:
    principal = client.get("/whoami").json()["principal"]
    return principal[1] if principal else None


def test_a_mapped_group_grants_its_role(client: Any, make_user: Any, fake_claude: FakeClaude) -> None:
    user = make_user(groups=[USERS, "Newsletter"])
    response = post(login(user), "/api/chat", prompt="hi")
    assert response.status_code == 200
    assert (response.json()["user"], response.json()["role"]) == (str(user.pk), "user")
    (sent,) = fake_claude.calls()
    assert sent.json["model"] == HAIKU


def test_the_most_privileged_mapped_group_wins(client: Any, make_user: Any, fake_claude: FakeClaude) -> None:
    signed_in = login(make_user(groups=[VIEWERS, POWER_USERS, USERS]))
    assert role_of(signed_in) == "power"
    assert post(signed_in, "/api/long", prompt="think").status_code == 200
    assert fake_claude.calls()[0].json["model"] == OPUS


@pytest.mark.parametrize("name", ["admin", "user", "power"])
def test_a_group_named_like_a_role_grants_nothing(
    client: Any, make_user: Any, fake_claude: FakeClaude, name: str
) -> None:
    signed_in = login(make_user(groups=[name]))  # a customer's team, or a group someone renamed
    assert role_of(signed_in) is None
    admin = signed_in.get("/admin")
    assert (admin.status_code, error_of(admin)) == (403, NO_ROLE)
    assert error_of(post(signed_in, "/api/chat", prompt="hi")) == NO_ROLE
    assert fake_claude.count() == 0


def test_renaming_a_group_to_a_role_name_grants_nothing(client: Any, make_user: Any) -> None:
    """A staff user who may only change groups renames the group of their support team to "admin"."""
    from django.contrib.auth.models import Group

    signed_in = login(make_user(groups=[USERS]))
    assert role_of(signed_in) == "user"
    Group.objects.filter(name=USERS).update(name="admin")
    assert role_of(signed_in) is None
    assert error_of(signed_in.get("/admin")) == NO_ROLE


def test_the_apps_own_role_field_grants_nothing(client: Any, make_user: Any, fake_claude: FakeClaude) -> None:
    """An organisation's founder has ``role = "admin"`` in the app's own meaning; ROLE_ATTRIBUTE names another."""
    founder = login(make_user(app_role="admin"))
    assert role_of(founder) is None
    assert error_of(founder.get("/admin")) == NO_ROLE
    assert fake_claude.count() == 0


def test_the_named_attribute_wins_over_groups(client: Any, make_user: Any, fake_claude: FakeClaude) -> None:
    signed_in = login(make_user(role="power", groups=[USERS]))
    response = post(signed_in, "/api/long", prompt="think")
    assert (response.status_code, response.json()["role"]) == (200, "power")


def test_only_values_naming_a_policy_role_count(client: Any, make_user: Any) -> None:
    assert role_of(login(make_user(role="root"))) is None
    assert role_of(login(make_user(role="root", groups=[USERS]))) == "user"  # the groups still apply
    assert role_of(login(make_user(role="Admin"))) is None  # role names are exact


def test_with_no_role_source_nobody_gets_a_role(claude_settings: Any, make_user: Any) -> None:
    claude_settings(ROLE_ATTRIBUTE=None, GROUP_ROLES=None)
    signed_in = login(make_user(role="admin", app_role="admin", groups=[ADMINS, "admin"]))
    assert role_of(signed_in) is None
    assert error_of(signed_in.get("/admin")) == NO_ROLE


def test_a_role_attribute_of_the_apps_choosing(claude_settings: Any, make_user: Any) -> None:
    """Pointing ROLE_ATTRIBUTE at the app's ``role`` field is an explicit choice, and only role names count."""
    claude_settings(ROLE_ATTRIBUTE="role")
    assert role_of(login(make_user(app_role="power", role="viewer"))) == "power"
    assert role_of(login(make_user(app_role="founder"))) is None


def test_superuser_gets_the_configured_role(claude_settings: Any, make_user: Any) -> None:
    superuser = make_user(superuser=True)
    assert error_of(login(superuser).get("/admin")) == NO_ROLE  # no SUPERUSER_ROLE: a superuser is just a user
    claude_settings(SUPERUSER_ROLE="admin")
    response = login(superuser).get("/admin")
    assert (response.status_code, response.content) == (200, b"<h1>admin</h1>")


def test_superuser_role_overrides_the_attribute_and_groups(claude_settings: Any, make_user: Any) -> None:
    claude_settings(SUPERUSER_ROLE="admin")
    assert role_of(login(make_user(role="viewer", groups=[VIEWERS], superuser=True))) == "admin"


def test_roles_from_groups_is_a_deprecated_spelling_of_the_old_rule(claude_settings: Any, make_user: Any) -> None:
    claude_settings(GROUP_ROLES=None, ROLES_FROM_GROUPS=True)
    assert role_of(login(make_user(groups=["power"]))) == "power"  # still works, with warning W004
    claude_settings(GROUP_ROLES=None, ROLES_FROM_GROUPS=False)
    assert role_of(login(make_user(groups=["power"]))) is None
    claude_settings(ROLES_FROM_GROUPS=True)  # with GROUP_ROLES set, the mapping alone decides
    assert role_of(login(make_user(groups=["power"]))) is None


def test_the_async_loader_reads_the_same_sources(claude_settings: Any, make_user: Any) -> None:
    claude_settings(PRINCIPAL_LOADER="claude_rbac.integrations.django.aprincipal_from_user")
    assert role_of(login(make_user(groups=[POWER_USERS, "admin"], app_role="admin"))) == "power"
    assert role_of(login(make_user(role="viewer", groups=[POWER_USERS]))) == "viewer"
