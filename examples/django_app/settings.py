"""Settings of the Django example. No database: the users are examples/common.py's demo users."""

from __future__ import annotations

import os

from examples import common
from examples.telemetry import log_events_wanted

from .backend import BACKEND

SECRET_KEY = common.SECRET_KEY
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
ROOT_URLCONF = "examples.django_app.urls"
WSGI_APPLICATION = "examples.django_app.wsgi.application"  # with a SERVER span per request when spans are exported
INSTALLED_APPS = ["claude_rbac.integrations.django"]  # registers the claude_rbac system checks
# The session holds only the username, in a cookie signed with SECRET_KEY; the role is looked up on the
# server (examples.common.role_of). A JSON API driven by scripts, so no CsrfViewMiddleware: keep it in a real
# app that serves HTML forms.
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "claude_rbac.integrations.django.RBACMiddleware",
]
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
# DJANGO_DEBUG=1 turns on Django's error page: keep the policy (CLAUDE_RBAC) out of it (check claude_rbac.W008).
DEFAULT_EXCEPTION_REPORTER_FILTER = "claude_rbac.integrations.django.ExceptionReporterFilter"

# The demo has no database, so its users are not Django users: its own loader maps each username to a role
# explicitly, on the server. An app on django.contrib.auth drops PRINCIPAL_LOADER and maps the groups it trusts,
# e.g. "GROUP_ROLES": {"Support staff": "user", "Research": "power"}: no group name grants a role by itself.
CLAUDE_RBAC = {
    "POLICY": os.environ.get("CLAUDE_RBAC_POLICY") or common.DEFAULT_POLICY,
    "STORAGE": os.environ.get("CLAUDE_RBAC_STORAGE") or "memory://",
    "KEY_PREFIX": os.environ.get("CLAUDE_RBAC_KEY_PREFIX") or "claude_rbac",
    "PRINCIPAL_LOADER": "examples.django_app.views.principal_from_session",
    "API_KEY": "examples.django_app.backend.api_key",
    "BASE_URL": BACKEND.base_url,
    "OPTIONS": {"audit_events": log_events_wanted()},  # OTEL_LOGS_EXPORTER set: a log event per denial
}
