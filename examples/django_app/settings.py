"""Settings of the Django example: a Django project on ``django.contrib.auth``, its users in groups.

The demo users (examples/common.py) are Django users in the groups of :mod:`examples.django_app.demo_users`,
on a SQLite database of the process's own (:mod:`examples.django_app.database`). The built-in principal loader
reads ``request.user``; ``GROUP_ROLES`` says which groups grant which role, and no other group grants any.
"""

from __future__ import annotations

import os

from examples import common
from examples.telemetry import log_events_wanted

from . import database
from .backend import BACKEND
from .demo_users import GROUP_ROLES

SECRET_KEY = common.SECRET_KEY
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
ROOT_URLCONF = "examples.django_app.urls"
WSGI_APPLICATION = "examples.django_app.wsgi.application"  # with a SERVER span per request when spans are exported
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "claude_rbac.integrations.django",  # registers the claude_rbac system checks
]
# The session (a cookie signed with SECRET_KEY) holds the user's id, as django.contrib.auth.login() writes it;
# the role comes from the user's groups, on the server. A JSON API driven by scripts, so no CsrfViewMiddleware:
# keep it in a real app that serves HTML forms.
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "claude_rbac.integrations.django.RBACMiddleware",  # after AuthenticationMiddleware (check claude_rbac.E005)
]
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": database.temporary_path()}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
# DJANGO_DEBUG=1 turns on Django's error page: keep the policy (CLAUDE_RBAC) out of it (check claude_rbac.W008).
DEFAULT_EXCEPTION_REPORTER_FILTER = "claude_rbac.integrations.django.ExceptionReporterFilter"

# No PRINCIPAL_LOADER: the built-in one reads request.user. Its role comes only from GROUP_ROLES, the groups
# this project trusts ({"Support staff": "user", ...}); a group named "admin" would grant nothing.
CLAUDE_RBAC = {
    "POLICY": os.environ.get("CLAUDE_RBAC_POLICY") or common.DEFAULT_POLICY,
    "STORAGE": os.environ.get("CLAUDE_RBAC_STORAGE") or "memory://",
    "KEY_PREFIX": os.environ.get("CLAUDE_RBAC_KEY_PREFIX") or "claude_rbac",
    "GROUP_ROLES": GROUP_ROLES,
    "API_KEY": "examples.django_app.backend.api_key",
    "BASE_URL": BACKEND.base_url,
    "OPTIONS": {"audit_events": log_events_wanted()},  # OTEL_LOGS_EXPORTER set: a log event per denial
}
