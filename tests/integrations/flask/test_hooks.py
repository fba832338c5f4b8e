"""The principal a guard or ``current_claude()`` acts on is the one after the app's ``before_request`` hooks.

Path rules run as a ``before_request`` hook; when ``ClaudeRBAC(app)`` comes before the app's own hooks,
they run first. A hook of the app that signs a user out (a revoked session, an expired impersonation)
must win: the view must not serve the user the rules let in a moment earlier.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request, session

from claude_rbac import RBAC, Principal
from claude_rbac.integrations.flask import ClaudeRBAC, current_claude, current_principal, requires_role
from claude_rbac.testing import FakeClaude

from .conftest import OPUS, SECRET, USERS, make_rbac

REVOKED: set[str] = set()
"""Sessions the app revoked on the server (a sign-out everywhere, a banned user)."""
SWITCH_BACK: dict[str, str] = {}
"""Impersonations the app ended: the session's user goes back to this one."""


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    yield
    REVOKED.clear()
    SWITCH_BACK.clear()


def loader_counting(calls: list[str]) -> Any:
    def load() -> Principal | None:
        name = session.get("username")
        calls.append(name or "-")
        return Principal(name, USERS[name]) if name in USERS else None

    return load


def hooked_app(rbac: RBAC, calls: list[str]) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, TESTING=True)
    # The extension first, as most apps write it: its path-rule hook runs before the app's own hooks.
    ClaudeRBAC(app, rbac=rbac, principal_loader=loader_counting(calls), rules={"/api/*": "user"})

    @app.before_request
    def revoke_sessions() -> None:
        name = session.get("username")
        if name in REVOKED:
            session.clear()
        elif name in SWITCH_BACK:
            session["username"] = SWITCH_BACK[name]

    @app.post("/login")
    def login() -> str:
        session["username"] = request.get_json()["username"]
        return "ok"

    @app.post("/api/rule-only")  # guarded by the path rule alone
    def rule_only() -> dict[str, Any]:
        return opus_reply()

    @app.post("/api/guarded")
    @requires_role("power")
    def guarded() -> dict[str, Any]:
        return opus_reply()

    return app


def opus_reply() -> dict[str, Any]:
    message = current_claude().messages.create(model=OPUS, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    principal = current_principal()
    return {"model": message.model, "user": principal.id if principal else None}


@pytest.mark.parametrize("path", ["/api/rule-only", "/api/guarded"])
def test_a_hook_that_revokes_the_session_wins(fake_claude: FakeClaude, path: str) -> None:
    calls: list[str] = []
    client = hooked_app(make_rbac(fake_claude), calls).test_client()
    client.post("/login", json={"username": "paul"})
    assert client.post(path).get_json()["model"] == OPUS
    REVOKED.add("paul")
    revoked = client.post(path)
    assert revoked.status_code == 401, revoked.get_json()
    assert fake_claude.count() == 1


def test_a_hook_that_changes_the_user_is_judged_again(fake_claude: FakeClaude) -> None:
    calls: list[str] = []
    client = hooked_app(make_rbac(fake_claude), calls).test_client()
    client.post("/login", json={"username": "paul"})
    SWITCH_BACK["paul"] = "uma"  # paul's impersonation ends: the session is uma's again
    assert client.post("/api/guarded").status_code == 403  # power needed, uma is a user
    rule_only = client.post("/api/rule-only")  # the rule admits uma; opus is not hers
    assert rule_only.status_code == 403
    assert rule_only.get_json()["error"]["error_code"] == "model_not_allowed"
    assert fake_claude.count() == 0


def test_the_loader_runs_once_before_the_hooks_and_once_at_the_view(fake_claude: FakeClaude) -> None:
    calls: list[str] = []
    client = hooked_app(make_rbac(fake_claude), calls).test_client()
    client.post("/login", json={"username": "paul"})
    calls.clear()
    assert client.post("/api/guarded").status_code == 200
    assert calls == ["paul", "paul"]  # the path rule's, then the view's (current_principal() reuses it)


def app_with_hooks_first(rbac: RBAC, calls: list[str], *, blueprint_hook: bool = False) -> Flask:
    """The app's hooks registered before the extension (or in a blueprint, which run after the app's)."""
    from flask import Blueprint

    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, TESTING=True)
    api = Blueprint("api", __name__, url_prefix="/api")

    def revoke_sessions() -> None:
        if session.get("username") in REVOKED:
            session.clear()

    if blueprint_hook:
        api.before_request(revoke_sessions)
    else:
        app.before_request(revoke_sessions)

    @app.post("/login")
    def login() -> str:
        session["username"] = request.get_json()["username"]
        return "ok"

    @api.post("/guarded")
    @requires_role("power")
    def guarded() -> dict[str, Any]:
        return opus_reply()

    app.register_blueprint(api)
    ClaudeRBAC(app, rbac=rbac, principal_loader=loader_counting(calls), rules={"/api/*": "user"})
    return app


@pytest.mark.parametrize(("blueprint_hook", "loads"), [(False, 1), (True, 2)])
def test_the_loader_runs_once_when_no_hook_of_the_app_runs_after_the_rules(
    fake_claude: FakeClaude, blueprint_hook: bool, loads: int
) -> None:
    """The rules' hook last: what it loads is what the view would load, so the view reuses it. A blueprint's hook
    runs after it: then the view loads again, and the revocation still wins either way."""
    calls: list[str] = []
    client = app_with_hooks_first(make_rbac(fake_claude), calls, blueprint_hook=blueprint_hook).test_client()
    client.post("/login", json={"username": "paul"})
    calls.clear()
    assert client.post("/api/guarded").get_json()["model"] == OPUS
    assert calls == ["paul"] * loads
    REVOKED.add("paul")
    assert client.post("/api/guarded").status_code == 401
    assert fake_claude.count() == 1
