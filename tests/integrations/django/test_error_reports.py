"""Django's error reports (the DEBUG 500 page, the e-mails to ADMINS) leave ``settings.CLAUDE_RBAC`` out."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.core.checks import run_checks
from django.test import Client, override_settings

from claude_rbac.integrations.django.checks import TAG

OURS = "claude_rbac.integrations.django.ExceptionReporterFilter"
POLICY = {
    "version": 1,
    "roles": {
        "viewer": {"allowed": False},
        "user": {"inherits": "viewer", "models": ["claude-haiku-*"], "max_tokens": 512},
        "power": {"inherits": "user", "models": ["claude-sonnet-*", "claude-opus-*"]},
        "admin": {"inherits": "power"},
        "research-team": {"inherits": "power", "models": ["claude-opus-4-7"], "rpm": 7},
    },
}
STORAGE = "redis://:hunter2-storage-password@127.0.0.1:6379/0"


def error_page(claude_settings: Any, **overrides: Any) -> str:
    from django.views.debug import get_default_exception_reporter_filter

    claude_settings(POLICY=POLICY, STORAGE=STORAGE)
    with override_settings(DEBUG=True, **overrides):
        get_default_exception_reporter_filter.cache_clear()  # Django builds the filter once per process
        try:
            response = Client(raise_request_exception=False).get("/broken")
        finally:
            get_default_exception_reporter_filter.cache_clear()
    assert response.status_code == 500
    page = html.unescape(response.content.decode())
    assert "a bug in the app" in page  # the technical 500 page, with its settings table
    return page


def test_djangos_own_filter_shows_the_policy_and_the_storage_password(claude_settings: Any) -> None:
    page = error_page(claude_settings)
    assert "research-team" in page
    assert "hunter2-storage-password" in page


def test_our_filter_hides_the_whole_setting(claude_settings: Any) -> None:
    page = error_page(claude_settings, DEFAULT_EXCEPTION_REPORTER_FILTER=OURS)
    assert "research-team" not in page
    assert "hunter2-storage-password" not in page
    assert "claude-opus-4-7" not in page
    row = page[page.index("CLAUDE_RBAC") :][:400]
    assert "********************" in row
    assert "SECRET_KEY" in page  # Django's own hiding still applies: the setting is listed, its value not
    assert "claude-rbac-tests-only" not in page


def w008() -> list[Any]:
    return [message for message in run_checks(tags=[TAG]) if message.id == "claude_rbac.W008"]


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"DEBUG": True}, "The DEBUG error page"),
        ({"ADMINS": [("Ops", "ops@example.com")]}, "The error e-mails to ADMINS"),
    ],
)
def test_w008_until_the_filter_is_set(claude_settings: Any, overrides: dict[str, Any], where: str) -> None:
    assert w008() == []  # DEBUG off and no ADMINS: no report shows settings
    with override_settings(**overrides):
        (message,) = w008()
        assert message.msg.startswith(f"{where} would show settings.CLAUDE_RBAC")
        assert OURS in message.hint
        with override_settings(DEFAULT_EXCEPTION_REPORTER_FILTER=OURS):
            assert w008() == []
