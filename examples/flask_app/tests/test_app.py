"""The Flask example through Flask's test client, against a real FakeClaude chosen by the environment."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from claude_rbac.cli import main
from claude_rbac.integrations.flask import current_rbac
from claude_rbac.testing import FakeClaude
from examples.common import DEMO_USERS
from examples.flask_app.tests.conftest import close_app
from examples.spend_checks import EXPECTED, SCRIPTED, page_figures, report_figures

HAIKU, SONNET, OPUS = "claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-7"
SMALL_POLICY = """\
version = 1
[roles.user]
models = ["claude-haiku-*"]
max_tokens = 20
[roles.power]
inherits = "user"
[roles.admin]
inherits = "power"
"""


class TestSession:
    @pytest.mark.parametrize(("username", "role"), DEMO_USERS.items())
    def test_json_login_and_me(self, login: Any, username: str, role: str) -> None:
        client = login(username)
        me = client.get("/api/me").get_json()
        assert (me["user"], me["role"]) == (username, role)
        with client.session_transaction() as session:
            assert dict(session) == {"username": username}  # never the role

    def test_form_login_redirects_a_browser(self, app: Flask) -> None:
        client = app.test_client()
        response = client.post("/login", data={"username": "paul"}, headers={"Accept": "text/html"})
        assert (response.status_code, response.headers["Location"]) == (303, "/")
        page = client.get("/").get_data(as_text=True)
        assert "paul" in page
        assert "Long answer (power)" in page

    def test_unknown_user_and_logout(self, app: Flask, login: Any) -> None:
        response = app.test_client().post("/login", json={"username": "mallory"})
        assert response.status_code == 401
        assert response.get_json()["error"]["type"] == "authentication_error"
        client = login("uma")
        assert client.post("/logout").get_json() == {"ok": True}
        assert client.get("/api/me").status_code == 401

    def test_index_offers_the_demo_users(self, app: Flask) -> None:
        page = app.test_client().get("/").get_data(as_text=True)
        for username, role in DEMO_USERS.items():
            assert f'value="{username}"' in page
            assert f"({role})" in page

    def test_me_shows_the_rate_limits(self, login: Any) -> None:
        client = login("uma")
        client.post("/api/chat", json={"prompt": "hi"})
        (bucket,) = client.get("/api/me").get_json()["rate_limits"]
        assert (bucket["kind"], bucket["limit"], bucket["remaining"]) == ("rpm", 10, 9)
        assert login("vera").get("/api/me").get_json()["rate_limits"] == []


class TestChat:
    def test_user_chats_with_haiku(self, login: Any, offline_env: FakeClaude) -> None:
        response = login("uma").post("/api/chat", json={"prompt": "Hello there", "max_tokens": 5000})
        assert response.status_code == 200
        body = response.get_json()
        assert body["model"] == HAIKU
        assert body["text"].startswith("Hello from FakeClaude")
        assert body["usage"]["output_tokens"] == 10
        (call,) = offline_env.calls()
        assert (call.json["model"], call.json["max_tokens"]) == (HAIKU, 512)
        assert call.json["messages"] == [{"role": "user", "content": "Hello there"}]

    @pytest.mark.parametrize(
        ("username", "status", "code"), [(None, 401, "unauthenticated"), ("vera", 403, "role_insufficient")]
    )
    def test_no_chat_below_user(
        self, login: Any, offline_env: FakeClaude, username: str | None, status: int, code: str
    ) -> None:
        response = login(username).post("/api/chat", json={"prompt": "hi"})
        assert response.status_code == status
        assert response.get_json()["error"]["error_code"] == code
        assert offline_env.count() == 0

    def test_user_may_not_pick_opus(self, login: Any, offline_env: FakeClaude) -> None:
        response = login("uma").post("/api/chat", json={"prompt": "hi", "model": OPUS})
        assert response.status_code == 403
        assert response.get_json()["error"] == {
            "type": "permission_error",
            "message": f"Role 'user' may not use model '{OPUS}'.",
            "error_code": "model_not_allowed",
        }
        assert offline_env.count() == 0
        assert login("paul").post("/api/chat", json={"prompt": "hi", "model": SONNET}).status_code == 200
        assert [call.json["model"] for call in offline_env.calls()] == [SONNET]

    @pytest.mark.parametrize(
        "body",
        [None, {"prompt": ""}, {"prompt": 42}, {"prompt": "hi", "max_tokens": "lots"}, {"prompt": "hi", "model": 7}],
    )
    def test_bad_requests_are_400_and_send_nothing(self, login: Any, offline_env: FakeClaude, body: Any) -> None:
        response = login("uma").post("/api/chat", json=body)
        assert response.status_code == 400
        assert response.get_json()["error"]["type"] == "invalid_request_error"
        assert offline_env.count() == 0

    @pytest.mark.parametrize(("path", "who"), [("/api/chat", "uma"), ("/api/long", "paul")])
    def test_max_tokens_zero_reaches_the_governed_client_and_is_refused(
        self, login: Any, offline_env: FakeClaude, path: str, who: str
    ) -> None:
        response = login(who).post(path, json={"prompt": "hi", "max_tokens": 0})
        assert response.status_code == 400
        assert response.get_json()["error"]["type"] == "invalid_request_error"
        assert "max_tokens must be between 1 and" in response.get_json()["error"]["message"]
        assert offline_env.count() == 0

    def test_the_rpm_limit_answers_429(self, login: Any, offline_env: FakeClaude) -> None:
        client = login("uma")
        for _ in range(10):
            assert client.post("/api/chat", json={"prompt": "hi"}).status_code == 200
        limited = client.post("/api/chat", json={"prompt": "hi"})
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.get_json()["error"]["error_code"] == "rate_limited"
        assert offline_env.count() == 10

    def test_upstream_errors_pass_through(self, login: Any, offline_env: FakeClaude) -> None:
        offline_env.script_error(400, "invalid_request_error", "prompt is too long")
        response = login("uma").post("/api/chat", json={"prompt": "hi"})
        assert response.status_code == 400
        assert response.get_json()["error"]["message"] == "prompt is too long"

    def test_an_unreachable_claude_is_a_502(self, login: Any, offline_env: FakeClaude) -> None:
        client = login("uma")
        offline_env.stop()  # nothing listens there any more
        response = client.post("/api/chat", json={"prompt": "hi"})
        assert response.status_code == 502
        assert response.get_json()["error"]["message"] == "Could not reach Claude."


class TestLongAndAdmin:
    def test_long_answers_need_power_and_use_opus(self, login: Any, offline_env: FakeClaude) -> None:
        assert login("uma").post("/api/long", json={"prompt": "a long one"}).status_code == 403
        response = login("paul").post("/api/long", json={"prompt": "a long one"})
        assert response.status_code == 200
        assert response.get_json()["model"] == OPUS
        assert login("ada").post("/api/long", json={"prompt": "longer", "max_tokens": 8000}).status_code == 200
        assert [(call.json["model"], call.json["max_tokens"]) for call in offline_env.calls()] == [
            (OPUS, 4096),
            (OPUS, 8000),  # the admin cap is 8192
        ]

    def test_long_route_is_opus_only(self, login: Any, offline_env: FakeClaude) -> None:
        response = login("ada").post("/api/long", json={"prompt": "hi", "model": SONNET})
        assert response.status_code == 403
        assert response.get_json()["error"]["error_code"] == "model_not_allowed"
        assert offline_env.count() == 0

    @pytest.mark.parametrize(
        ("username", "status"), [(None, 401), ("vera", 403), ("uma", 403), ("paul", 403), ("ada", 200)]
    )
    def test_admin_page(self, login: Any, username: str | None, status: int) -> None:
        response = login(username).get("/admin")
        assert response.status_code == status
        if status == 200:
            page = response.get_data(as_text=True)
            assert "Roles in force" in page
            assert "claude-opus-*" in page


class TestStream:
    def test_streams_the_answer(self, login: Any, offline_env: FakeClaude) -> None:
        response = login("uma").get("/api/chat/stream?prompt=hi")
        assert response.status_code == 200
        assert response.mimetype == "text/event-stream"
        events = [event for event in response.get_data(as_text=True).split("\n\n") if event]
        text = "".join(json.loads(event[6:])["text"] for event in events if event.startswith("data: "))
        assert text == "Hello from FakeClaude, a local stand-in for the Messages API."
        assert events[-1] == 'event: done\ndata: {"usage": {"input_tokens": 1, "output_tokens": 10}}'
        (call,) = offline_env.calls()
        assert call.json["stream"] is True

    def test_a_denied_stream_is_an_http_error(self, login: Any, offline_env: FakeClaude) -> None:
        assert login("vera").get("/api/chat/stream?prompt=hi").status_code == 403
        response = login("uma").get(f"/api/chat/stream?prompt=hi&model={OPUS}")
        assert response.status_code == 403
        assert response.get_json()["error"]["error_code"] == "model_not_allowed"
        assert login("uma").get("/api/chat/stream").status_code == 400
        assert offline_env.count() == 0


def test_limits_on_redis_from_the_environment(
    redis_env: str, offline_env: FakeClaude, make_app: Callable[[], Flask]
) -> None:
    """Two app instances (two workers) share CLAUDE_RBAC_STORAGE: the RPM budget is one."""
    first, second = make_app().test_client(), make_app().test_client()
    for client in (first, second):
        client.post("/login", json={"username": "uma"})
    statuses = [client.post("/api/chat", json={"prompt": "hi"}).status_code for client in (first, second) * 6]
    assert statuses == [200] * 10 + [429] * 2
    assert offline_env.count() == 10


def test_policy_from_the_environment(
    offline_env: FakeClaude, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_app: Callable[[], Flask]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(SMALL_POLICY)
    monkeypatch.setenv("CLAUDE_RBAC_POLICY", str(policy))
    client = make_app().test_client()
    client.post("/login", json={"username": "uma"})
    assert client.post("/api/chat", json={"prompt": "hi"}).status_code == 200
    assert offline_env.calls()[0].json["max_tokens"] == 20
    client.post("/login", json={"username": "vera"})  # "viewer" is not in this policy: no access at all
    assert client.post("/api/chat", json={"prompt": "hi"}).status_code == 403
    assert offline_env.count() == 1


def test_the_wsgi_app_object(offline_env: FakeClaude, monkeypatch: pytest.MonkeyPatch) -> None:
    """`examples.flask_app:app` for WSGI servers: built on first access, from the environment, once."""
    import examples.flask_app as package

    monkeypatch.setattr(package, "_app", None)
    wsgi_app = package.app
    assert isinstance(wsgi_app, Flask)
    assert package.app is wsgi_app
    client = wsgi_app.test_client()
    client.post("/login", json={"username": "uma"})
    assert client.post("/api/chat", json={"prompt": "hi"}).status_code == 200
    assert offline_env.count() == 1
    close_app(wsgi_app)


class TestSpend:
    """Today's spend: the admin page's chart and figures are the ledger's, which are the hand-priced costs."""

    @staticmethod
    def spend_some(login: Any, fake: FakeClaude) -> None:
        for user, usage, _ in SCRIPTED:
            fake.script_usage(usage)
            assert login(user).post("/api/chat", json={"prompt": "hi"}).status_code == 200

    @pytest.mark.parametrize(("username", "status"), [(None, 401), ("vera", 403), ("uma", 403), ("paul", 403)])
    def test_only_admins_see_the_spend(
        self, login: Any, offline_env: FakeClaude, username: str | None, status: int
    ) -> None:
        self.spend_some(login, offline_env)
        response = login(username).get("/admin")
        assert response.status_code == status
        assert "data-micro-dollars" not in response.get_data(as_text=True)

    def test_the_admin_page_shows_the_ledger(self, app: Flask, login: Any, offline_env: FakeClaude) -> None:
        self.spend_some(login, offline_env)
        page = login("ada").get("/admin").get_data(as_text=True)
        with app.app_context():
            ledger = current_rbac().spend_ledger
            assert ledger is not None
            report = ledger.report()
        assert page_figures(page) == report_figures(report)
        assert page_figures(page)[0] == EXPECTED
        assert "<svg" in page
        assert "<script" not in page.split("<svg", 1)[1].split("</svg>", 1)[0]
        assert "By role" in page
        assert "By user" in page

    def test_the_demo_page_shows_the_dollars_left(self, login: Any, offline_env: FakeClaude) -> None:
        self.spend_some(login, offline_env)
        client = login("uma")
        (day,) = client.get("/api/me").get_json()["spend"]
        spent = sum((amount for user, _, amount in SCRIPTED if user == "uma"), Decimal(0))
        assert (day["scope"], day["period"], Decimal(day["limit"])) == ("principal", "day", Decimal("0.5"))
        assert Decimal(day["remaining"]) == Decimal("0.5") - spent
        assert f"<b>${day['remaining']}</b> of $0.5" in client.get("/").get_data(as_text=True)
        assert login("vera").get("/api/me").get_json()["spend"] == []


def test_cli_ledger_and_admin_page_agree_on_redis(
    redis_env: str, offline_env: FakeClaude, make_app: Callable[[], Flask], capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app()
    for user, usage, _ in SCRIPTED:
        offline_env.script_usage(usage)
        client = app.test_client()
        client.post("/login", json={"username": user})
        assert client.post("/api/chat", json={"prompt": "hi"}).status_code == 200
    with app.app_context():
        current_rbac().flush()
    admin = app.test_client()
    admin.post("/login", json={"username": "ada"})
    page = page_figures(admin.get("/admin").get_data(as_text=True))
    assert main(["spend", "--json"]) == 0  # CLAUDE_RBAC_STORAGE and CLAUDE_RBAC_KEY_PREFIX, as the app reads them
    printed = json.loads(capsys.readouterr().out)
    cli = {(row["principal"], row["role"]): (Decimal(row["dollars"]), row["calls"]) for row in printed["rows"]}
    assert page[0] == cli == EXPECTED


def test_the_admin_page_escapes_recorded_ids(app: Flask, login: Any) -> None:
    """User ids are untrusted: an id is text on the page, in the chart and in the table's attributes."""
    with app.app_context():
        ledger = current_rbac().spend_ledger
        assert ledger is not None
        ledger.record(ledger.today(), '<script>alert(1)</script>"', "user", 5, 1)
    page = login("ada").get("/admin").get_data(as_text=True)
    assert "<script>alert(1)" not in page
    assert 'data-principal="&lt;script&gt;alert(1)&lt;/script&gt;&quot;"' in page
    assert page_figures(page)[0] == {('<script>alert(1)</script>"', "user"): (Decimal("0.000005"), 1)}
