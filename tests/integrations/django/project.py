"""The minimal Django project the tests run: sqlite in memory, auth, contenttypes, sessions.

Django's settings can be configured once per process, so :func:`configure` does it on first use and
only for this directory's tests (the conftest calls it); tests change settings with ``override_settings``.
"""

from __future__ import annotations

import django
from django.conf import settings
from examples.backend import PLACEHOLDER_KEY

HAIKU, SONNET, OPUS = "claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-7"
OUR_MIDDLEWARE = "claude_rbac.integrations.django.RBACMiddleware"
SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"
MIDDLEWARE = [SESSION_MIDDLEWARE, AUTH_MIDDLEWARE, OUR_MIDDLEWARE]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "claude_rbac.integrations.django",
    "tests.integrations.django.testapp",
]
VIEWERS, USERS, POWER_USERS, ADMINS = "Readers", "Support staff", "Research", "Claude admins"
GROUP_ROLES = {VIEWERS: "viewer", USERS: "user", POWER_USERS: "power", ADMINS: "admin"}
"""The groups the tests' settings trust, each mapped to a role: a group named like a role grants nothing."""
BASE_CLAUDE_RBAC = {
    "API_KEY": "tests.integrations.django.project.api_key",
    "STORAGE": "memory://",
    "ROLE_ATTRIBUTE": "claude_role",
    "GROUP_ROLES": GROUP_ROLES,
}


def api_key() -> str:
    """``CLAUDE_RBAC['API_KEY']`` as a dotted path: the tests' key source (FakeClaude ignores the key)."""
    return PLACEHOLDER_KEY


def configure() -> None:
    if settings.configured:
        if getattr(settings, "CLAUDE_RBAC_TEST_PROJECT", False):
            return
        raise RuntimeError("Django was configured by something else in this process; run these tests on their own")
    settings.configure(
        CLAUDE_RBAC_TEST_PROJECT=True,
        DEBUG=False,
        SECRET_KEY="claude-rbac-tests-only",
        ALLOWED_HOSTS=["testserver", "127.0.0.1", "localhost"],
        ROOT_URLCONF="tests.integrations.django.urls",
        INSTALLED_APPS=INSTALLED_APPS,
        AUTH_USER_MODEL="testapp.Member",
        MIDDLEWARE=MIDDLEWARE,
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
        CLAUDE_RBAC=BASE_CLAUDE_RBAC,
    )
    django.setup()
    from django.db import connection

    # A shared-cache in-memory database, so threads (ASGI servers, sync_to_async) see the same tables.
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
