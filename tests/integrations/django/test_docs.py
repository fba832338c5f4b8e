"""docs/django.md's example runs exactly as written: its settings, its policy file and its views."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.checks import run_checks
from django.test import AsyncClient, override_settings
from examples.backend import PLACEHOLDER_KEY

from claude_rbac.testing import FakeClaude

from .project import AUTH_MIDDLEWARE, INSTALLED_APPS, SESSION_MIDDLEWARE
from .support import aclose_clients, close_clients, login

DOCS = Path(__file__).resolve().parents[3] / "docs" / "django.md"


def block(first_line: str) -> str:
    """The fenced code block of the docs whose first line is ``first_line``."""
    for code in re.findall(r"```[a-z]*\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.DOTALL):
        if code.startswith(first_line):
            return str(code)
    raise AssertionError(f"docs/django.md has no block starting with {first_line!r}")


@pytest.fixture
def docs_project(tmp_path: Path, fake_claude: FakeClaude, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    (tmp_path / "rbac.toml").write_text(block("# rbac.toml"), encoding="utf-8")
    existing = {
        "BASE_DIR": tmp_path,
        "INSTALLED_APPS": [app for app in INSTALLED_APPS if app != "claude_rbac.integrations.django"],
        "MIDDLEWARE": [SESSION_MIDDLEWARE, AUTH_MIDDLEWARE],
    }
    exec(block("# settings.py"), existing)  # the settings lines, added to an existing project's settings
    views = types.ModuleType("docs_django_views")
    exec(block("# views.py"), views.__dict__)
    monkeypatch.setitem(sys.modules, views.__name__, views)
    monkeypatch.setenv("ANTHROPIC_API_KEY", PLACEHOLDER_KEY)  # the default key source
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_claude.url)  # the SDK's own setting
    with override_settings(
        MIDDLEWARE=existing["MIDDLEWARE"], CLAUDE_RBAC=existing["CLAUDE_RBAC"], ROOT_URLCONF=views.__name__
    ):
        yield existing
        close_clients()


def test_the_settings_lines_extend_an_existing_project(docs_project: dict[str, Any]) -> None:
    assert docs_project["INSTALLED_APPS"][-1] == "claude_rbac.integrations.django"
    assert (
        docs_project["DEFAULT_EXCEPTION_REPORTER_FILTER"] == "claude_rbac.integrations.django.ExceptionReporterFilter"
    )
    assert docs_project["MIDDLEWARE"] == [
        SESSION_MIDDLEWARE,
        AUTH_MIDDLEWARE,
        "claude_rbac.integrations.django.RBACMiddleware",
    ]
    assert [message.id for message in run_checks() if message.id.startswith("claude_rbac")] == []


def group_of(docs_project: dict[str, Any], role: str) -> str:
    """The group the docs' ``GROUP_ROLES`` maps to ``role``."""
    return next(group for group, mapped in docs_project["CLAUDE_RBAC"]["GROUP_ROLES"].items() if mapped == role)


def test_the_example_views_run(docs_project: dict[str, Any], make_user: Any, fake_claude: FakeClaude) -> None:
    user = make_user(groups=[group_of(docs_project, "user"), "admin"])  # a group named "admin" grants nothing
    power, superuser = make_user(groups=[group_of(docs_project, "power")]), make_user(superuser=True)
    assert login(user).post("/chat", {"prompt": "hi"}).json()["text"].startswith("Hello from FakeClaude")
    assert login(user).post("/long", {"prompt": "hi"}).status_code == 403
    assert login(user).get("/usage").status_code == 403
    usage = login(superuser).get("/usage")
    assert usage.status_code == 200
    assert usage.json()["rate_limits"][0]["limit"] == 60  # admin inherits power's rpm

    async def long_answer() -> Any:
        client = AsyncClient()
        await client.aforce_login(power)
        try:
            return await client.post("/long", {"prompt": "think"})
        finally:
            await aclose_clients()

    assert async_to_sync(long_answer)().status_code == 200
    assert [(call.json["model"], call.json["max_tokens"]) for call in fake_claude.calls()] == [
        ("claude-haiku-4-5", 256),
        ("claude-opus-4-7", 2048),
    ]
