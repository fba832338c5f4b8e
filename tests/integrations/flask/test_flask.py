"""claude_rbac.integrations.flask through Flask's test client, against a real FakeClaude over real HTTP."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, redirect, session
from flask.views import MethodView
from flask_login import LoginManager, UserMixin, login_user
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from claude_rbac import RBAC, AccessDenied, NotAuthenticated, Policy, PolicyError, Principal, RBACError
from claude_rbac.integrations.flask import (
    ClaudeRBAC,
    RBACTestClient,
    current_claude,
    current_principal,
    current_rbac,
    json_error,
    requires_role,
)
from claude_rbac.testing import FakeClaude

from .conftest import (
    GUARDED_ENDPOINTS,
    HAIKU,
    OPUS,
    PLACEHOLDER_KEY,
    RANK,
    SECRET,
    SONNET,
    USERS,
    ServerSpan,
    add_routes,
    authorize_spans,
    build_app,
    close_later,
    make_rbac,
    route_decisions,
    session_principal,
    spans_named,
)

USER_POLICY_TOML = """
version = 1
[roles.member]
models = ["claude-haiku-*"]
max_tokens = 100
rpm = 5
[roles.staff]
inherits = ["member"]
"""


def error_body(status_type: str, error_code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": status_type, "message": message, "error_code": error_code}}


# -- the extension ----------------------------------------------------------------------------------


class TestExtension:
    def test_registers_itself_and_keeps_no_app(self, rbac: RBAC) -> None:
        app = Flask(__name__)
        extension = ClaudeRBAC(app, rbac=rbac)
        assert app.extensions["claude_rbac"] is extension
        assert not any(isinstance(value, Flask) for value in vars(extension).values())
        with app.app_context():
            assert current_rbac() is rbac
            assert extension.rbac is rbac

    def test_init_app_reads_config_keys(self, fake_claude: FakeClaude, tmp_path: Path) -> None:
        policy_file = tmp_path / "rbac.toml"
        policy_file.write_text(USER_POLICY_TOML)
        app = Flask(__name__)
        app.config.update(
            SECRET_KEY=SECRET,
            CLAUDE_RBAC_POLICY=str(policy_file),
            CLAUDE_RBAC_STORAGE="memory://",
            CLAUDE_RBAC_API_KEY="sk-ant-api03-from-config-key-1111",
            CLAUDE_RBAC_BASE_URL=fake_claude.url,
            CLAUDE_RBAC_SESSION_USER_KEY="uid",
            CLAUDE_RBAC_ROLE_LOADER={"sam": "staff"}.get,
        )
        ClaudeRBAC().init_app(app)
        close_later(app)

        @app.post("/ask")
        @requires_role("member")
        def ask() -> dict[str, str]:
            message = current_claude().messages.create(
                model=HAIKU, max_tokens=1000, messages=[{"role": "user", "content": "hi"}]
            )
            return {"model": message.model}

        client = app.test_client()
        with client.session_transaction() as sess:
            sess.update(uid="sam")
        assert client.post("/ask").status_code == 200
        with app.app_context():
            assert set(current_rbac().policy.roles) == {"member", "staff"}
        (call,) = fake_claude.calls()
        assert call.api_key == "sk-ant-api03-from-config-key-1111"
        assert call.json["max_tokens"] == 100  # the file's cap, clamped

    def test_api_key_from_the_environment_variable_config_names(
        self, fake_claude: FakeClaude, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TEAM_CLAUDE_KEY", "sk-ant-api03-from-env-var-key-2222")
        app = Flask(__name__)
        app.config.update(CLAUDE_RBAC_API_KEY_ENV="TEAM_CLAUDE_KEY", CLAUDE_RBAC_BASE_URL=fake_claude.url)
        ClaudeRBAC(app, principal_loader=lambda: Principal("uma", "user"))
        close_later(app)
        add_routes(app)
        assert app.test_client().post("/chat").status_code == 200
        assert fake_claude.api_keys_seen == ["sk-ant-api03-from-env-var-key-2222"]

    def test_a_missing_key_fails_at_init_app(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("TEAM_CLAUDE_KEY", raising=False)
        app = Flask(__name__)
        app.config.update(CLAUDE_RBAC_API_KEY_ENV="TEAM_CLAUDE_KEY")
        with pytest.raises(PolicyError, match="TEAM_CLAUDE_KEY"):
            ClaudeRBAC(app)

    def test_constructor_arguments_win_over_config(self, rbac: RBAC, fake_claude: FakeClaude) -> None:
        app = Flask(__name__)
        app.config.update(
            SECRET_KEY=SECRET,
            CLAUDE_RBAC_POLICY={"version": 1, "roles": {"other": {"models": ["claude-*"]}}},
            CLAUDE_RBAC_ON_DENIED="abort",
            CLAUDE_RBAC_RULES={"/chat": "admin"},
        )
        ClaudeRBAC(
            app,
            rbac=rbac,
            principal_loader=session_principal,
            on_denied=lambda error: ("denied by the constructor's callback", 418),
            rules={},
        )
        add_routes(app)
        client = app.test_client()
        with app.app_context():
            assert current_rbac() is rbac  # not the config's policy
        assert client.post("/chat").get_data(as_text=True) == "denied by the constructor's callback"
        client.post("/login", json={"username": "uma"})
        assert client.post("/chat").status_code == 200  # the config's "/chat": "admin" rule is not in force
        assert fake_claude.count() == 1

    def test_on_denied_from_config_as_an_import_string(self, rbac: RBAC) -> None:
        app = Flask(__name__)
        app.config.update(CLAUDE_RBAC_ON_DENIED=f"{__name__}:teapot")
        ClaudeRBAC(app, rbac=rbac, principal_loader=lambda: None)
        add_routes(app)
        response = app.test_client().post("/chat")
        assert (response.status_code, response.get_data(as_text=True)) == (418, "unauthenticated")

    def test_bad_config_values_fail_at_init_app(self, rbac: RBAC) -> None:
        app = Flask(__name__)
        app.config.update(CLAUDE_RBAC_ON_DENIED=42)
        with pytest.raises(ValueError, match="CLAUDE_RBAC_ON_DENIED"):
            ClaudeRBAC(app, rbac=rbac)
        app.config.update(CLAUDE_RBAC_ON_DENIED="json", CLAUDE_RBAC_RATE_LIMIT_HEADERS="draft-7")
        with pytest.raises(ValueError, match="RATE_LIMIT_HEADERS"):
            ClaudeRBAC(app, rbac=rbac)

    def test_an_unknown_config_key_fails_at_init_app_listing_the_known_ones(self, rbac: RBAC) -> None:
        app = Flask(__name__)
        app.config.update(CLAUDE_RBAC_STORGE="redis://127.0.0.1:6379/0")  # a typo must not silently fall back
        with pytest.raises(ValueError, match="CLAUDE_RBAC_STORGE") as info:
            ClaudeRBAC(app, rbac=rbac)
        assert "CLAUDE_RBAC_STORAGE" in str(info.value)

    def test_one_extension_serves_several_apps(self, fake_claude: FakeClaude) -> None:
        extension = ClaudeRBAC(principal_loader=lambda: Principal("uma", "user"))

        def create_app(key: str, cap: int) -> Flask:
            app = Flask(__name__)
            app.config.update(
                CLAUDE_RBAC_API_KEY=key,
                CLAUDE_RBAC_BASE_URL=fake_claude.url,
                CLAUDE_RBAC_POLICY=policy_with_user_cap(cap),
            )
            extension.init_app(app)
            close_later(app)
            add_routes(app)
            return app

        first, second = (
            create_app("sk-ant-api03-first-app-key-0001", 10),
            create_app("sk-ant-api03-second-app-0002", 20),
        )
        assert first.extensions["claude_rbac"] is second.extensions["claude_rbac"] is extension
        for app in (first, second, first):
            assert app.test_client().post("/chat", json={"max_tokens": 500}).status_code == 200
        assert [(call.api_key, call.json["max_tokens"]) for call in fake_claude.calls()] == [
            ("sk-ant-api03-first-app-key-0001", 10),
            ("sk-ant-api03-second-app-0002", 20),
            ("sk-ant-api03-first-app-key-0001", 10),
        ]
        with pytest.raises(RuntimeError, match="app context"):
            _ = extension.rbac

    def test_uninitialised_app_says_so(self) -> None:
        app = Flask(__name__)

        @app.get("/x")
        @requires_role("user")
        def x() -> str:
            return "unreachable"

        app.config["TESTING"] = True
        with pytest.raises(RuntimeError, match=r"ClaudeRBAC\(app\)"):
            app.test_client().get("/x")


def policy_with_user_cap(cap: int) -> dict[str, Any]:
    roles = {
        "viewer": {"allowed": False},
        "user": {"inherits": "viewer", "models": ["claude-haiku-*"], "max_tokens": cap},
        "power": {"inherits": "user"},
        "admin": {"inherits": "power"},
    }
    return {"version": 1, "roles": roles}


def teapot(error: RBACError) -> tuple[str, int]:
    return error.reason, 418


# -- loading the principal --------------------------------------------------------------------------


class User(UserMixin):
    def __init__(self, user_id: str, role: str) -> None:
        self.id = user_id
        self.role = role
        self.rank = role


class TestPrincipalLoading:
    def flask_login_app(self, rbac: RBAC, **config: Any) -> Flask:
        app = Flask(__name__)
        app.config.update(SECRET_KEY=SECRET, TESTING=True, **config)
        login_manager = LoginManager(app)
        login_manager.user_loader(lambda user_id: User(user_id, USERS[user_id]) if user_id in USERS else None)
        ClaudeRBAC(app, rbac=rbac)

        @app.post("/login/<name>")
        def login_as(name: str) -> str:
            login_user(User(name, USERS[name]))
            return "ok"

        add_routes(app)
        return app

    def test_flask_login_current_user_and_its_role_attribute(
        self, rbac: RBAC, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter
    ) -> None:
        app = self.flask_login_app(rbac)
        anonymous = app.test_client()
        assert anonymous.post("/chat").status_code == 401
        power = app.test_client()
        power.post("/login/paul")
        assert power.get("/whoami").get_json() == {"user": "paul", "role": "power"}
        assert power.post("/team/chat").status_code == 200
        viewer = app.test_client()
        viewer.post("/login/vera")
        assert viewer.post("/chat").status_code == 403
        assert fake_claude.count() == 1
        assert route_decisions(span_exporter) == [
            (None, "deny", "unauthenticated"),
            ("paul", "allow", "allowed"),
            ("vera", "deny", "role_insufficient"),
        ]

    def test_role_attribute_is_configurable(self, rbac: RBAC) -> None:
        app = self.flask_login_app(rbac, CLAUDE_RBAC_ROLE_ATTRIBUTE="rank")
        client = app.test_client()
        client.post("/login/ada")
        assert client.get("/whoami").get_json() == {"user": "ada", "role": "admin"}

    def test_default_session_key_and_role_loader(self, rbac: RBAC, fake_claude: FakeClaude) -> None:
        roles: dict[str, object] = {"7": "user"}
        app = build_app(rbac, principal_loader=None, role_loader=roles.get)
        client = app.test_client()
        assert client.post("/chat").status_code == 401
        with client.session_transaction() as sess:
            sess.update(user_id=7, role="admin")  # the session's role is never read
        assert client.get("/whoami").get_json() == {"user": "7", "role": "user"}
        assert client.post("/chat").status_code == 200
        roles["7"] = ["admin"]  # not a role name: no role
        assert client.post("/chat").status_code == 403
        assert fake_claude.count() == 1

    def test_explicit_loader_is_called_once_per_request(self, rbac: RBAC) -> None:
        calls: list[str] = []

        def loader() -> Principal | None:
            calls.append(session.get("username", "-"))
            return Principal("uma", "user")

        app = build_app(rbac, principal_loader=loader)

        @app.get("/twice")
        @requires_role("user")
        def twice() -> dict[str, str | None]:
            assert current_principal() is current_principal()
            return {"role": current_principal().role}

        client = app.test_client()
        assert client.get("/twice").get_json() == {"role": "user"}
        assert client.get("/whoami").get_json() == {"user": "uma", "role": "user"}
        assert calls == ["-", "-"]

    @pytest.mark.parametrize(
        ("loader", "logged"),
        [
            pytest.param(lambda: 1 / 0, "raised", id="raises"),
            pytest.param(lambda: {"id": "eve", "role": "admin"}, "returned dict", id="returns-a-dict"),
            pytest.param(lambda: ("eve", "admin"), "returned tuple", id="returns-a-tuple"),
        ],
    )
    def test_a_broken_loader_denies(
        self,
        rbac: RBAC,
        fake_claude: FakeClaude,
        span_exporter: InMemorySpanExporter,
        caplog: pytest.LogCaptureFixture,
        loader: Any,
        logged: str,
    ) -> None:
        app = build_app(rbac, principal_loader=loader)
        with caplog.at_level(logging.ERROR, logger="claude_rbac"):
            response = app.test_client().post("/chat")
        assert response.status_code == 401
        assert response.get_json()["error"]["type"] == "authentication_error"
        assert any(logged in record.getMessage() and record.levelno == logging.ERROR for record in caplog.records)
        assert fake_claude.count() == 0
        assert route_decisions(span_exporter) == [(None, "deny", "unauthenticated")]

    def test_test_client_signed_in_as_a_principal(self, rbac: RBAC, fake_claude: FakeClaude) -> None:
        app = build_app(rbac, principal_loader=lambda: None)
        app.test_client_class = RBACTestClient
        assert app.test_client(principal=Principal("ada", "admin")).post("/notes").status_code == 200
        assert app.test_client().post("/notes").status_code == 401
        assert fake_claude.count() == 1


# -- requires_role ----------------------------------------------------------------------------------


class TestRequiresRole:
    @pytest.mark.parametrize(("path", "required"), GUARDED_ENDPOINTS)
    @pytest.mark.parametrize("username", [None, "vera", "uma", "paul", "ada"])
    def test_every_kind_of_view(
        self,
        login: Any,
        fake_claude: FakeClaude,
        span_exporter: InMemorySpanExporter,
        path: str,
        required: str,
        username: str | None,
    ) -> None:
        response = login(username).post(path, json={"prompt": "hi"})
        if username is None:
            expected, reason = 401, "unauthenticated"
        elif RANK[USERS[username]] >= RANK[required]:
            expected, reason = 200, "allowed"
        else:
            expected, reason = 403, "role_insufficient"
        assert response.status_code == expected, response.get_data(as_text=True)
        assert fake_claude.count() == (1 if expected == 200 else 0)
        if expected == 200:
            assert response.get_json()["user"] == username
        else:
            assert response.get_json()["error"]["error_code"] == reason
        (span,) = [span for span in authorize_spans(span_exporter) if span.attributes.get("claude_rbac.required_role")]
        assert span.attributes["claude_rbac.required_role"] == required
        assert span.attributes["claude_rbac.decision.reason"] == reason
        assert span.attributes["claude_rbac.route"] == path

    def test_unguarded_methods_of_a_method_view_stay_open(self, login: Any, fake_claude: FakeClaude) -> None:
        assert login(None).get("/notes").get_json() == {"view": "notes"}
        assert login("paul").get("/reports").get_json() == {"view": "reports"}
        assert login("uma").get("/reports").status_code == 403
        assert fake_claude.count() == 0

    def test_a_viewer_guard_admits_every_signed_in_role(self, login: Any) -> None:
        for username in USERS:
            assert login(username).get("/page").status_code == 200
        assert login(None).get("/page").status_code == 401

    def test_unknown_role_fails_at_init_app(self, rbac: RBAC) -> None:
        app = Flask(__name__)

        @app.get("/x")
        @requires_role("superuser")
        def x() -> str:
            return "x"

        with pytest.raises(PolicyError, match="superuser"):
            ClaudeRBAC(app, rbac=rbac)

    def test_unknown_role_in_a_rule_fails_at_init_app(self, rbac: RBAC) -> None:
        with pytest.raises(PolicyError, match="root"):
            ClaudeRBAC(Flask(__name__), rbac=rbac, rules={"/ops/*": "root"})

    def test_unknown_role_added_after_init_app_fails_the_first_request(self, rbac: RBAC) -> None:
        app = build_app(rbac, testing=False)

        class Audit(MethodView):
            @requires_role("auditor")
            def get(self) -> str:
                return "x"

        app.add_url_rule("/audit", view_func=Audit.as_view("audit"))
        client = app.test_client()
        for _ in range(2):  # every request, until the app is fixed
            response = client.get("/whoami")
            assert response.status_code == 500
            assert response.get_json() is None  # Flask's own 500 page: the policy never reaches a body
        app.config["TESTING"] = True
        with pytest.raises(PolicyError, match="auditor"):
            client.get("/whoami")

    def test_bad_scope_fails_at_decoration(self) -> None:
        with pytest.raises(PolicyError):
            requires_role("user", max_tokens=0)
        with pytest.raises(PolicyError):
            requires_role("user", models=[])
        with pytest.raises(TypeError):
            requires_role("")

    def test_misuse_fails_at_decoration(self) -> None:
        with pytest.raises(TypeError, match="already has a requires_role"):

            @requires_role("user")
            @requires_role("admin")
            def twice() -> str:
                return "x"

        with pytest.raises(TypeError, match="View classes"):
            requires_role("user")(dict)

    def test_current_claude_outside_a_guarded_route_raises(self, login: Any, fake_claude: FakeClaude) -> None:
        with pytest.raises(RuntimeError, match="requires_role"):
            login("ada").get("/unguarded-claude")
        assert fake_claude.count() == 0

    def test_current_claude_carries_the_route_scope(self, login: Any, fake_claude: FakeClaude) -> None:
        power = login("paul")
        ok = power.post("/opus", json={"model": OPUS, "max_tokens": 4000})
        assert ok.status_code == 200
        assert ok.get_json()["model"] == OPUS
        denied = power.post("/opus", json={"model": SONNET})
        assert denied.status_code == 403
        assert denied.get_json() == error_body(
            "permission_error", "model_not_allowed", f"This route allows only claude-opus-*, not model '{SONNET}'."
        )
        assert login("uma").post("/opus", json={"model": OPUS}).status_code == 403
        assert [(call.json["model"], call.json["max_tokens"]) for call in fake_claude.calls()] == [(OPUS, 100)]

    def test_current_principal_on_unguarded_routes(self, login: Any) -> None:
        assert login(None).get("/whoami").get_json() == {"user": None, "role": None}
        assert login("vera").get("/whoami").get_json() == {"user": "vera", "role": "viewer"}


# -- errors ----------------------------------------------------------------------------------------


class TestErrors:
    def test_401_and_403_bodies(self, login: Any, fake_claude: FakeClaude) -> None:
        response = login(None).post("/chat")
        assert response.status_code == 401
        assert response.content_type == "application/json"
        assert response.get_json() == error_body(
            "authentication_error", "unauthenticated", "Sign in to use this route."
        )
        response = login("vera").post("/chat")
        assert response.status_code == 403
        assert response.get_json() == error_body(
            "permission_error", "role_insufficient", "Role 'viewer' may not use this route."
        )
        assert fake_claude.count() == 0

    def test_429_with_retry_after(
        self, fake_claude: FakeClaude, storage: str, key_prefix: str, span_exporter: InMemorySpanExporter
    ) -> None:
        app = build_app(make_rbac(fake_claude, storage=storage, key_prefix=key_prefix))
        client = app.test_client()
        client.post("/login", json={"username": "uma"})
        assert client.post("/once").status_code == 200
        response = client.post("/once")
        assert response.status_code == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert response.get_json()["error"] == {
            "type": "rate_limit_error",
            "message": response.get_json()["error"]["message"],
            "error_code": "rate_limited",
        }
        assert fake_claude.count() == 1
        (limited,) = [s for s in authorize_spans(span_exporter) if s.attributes["claude_rbac.decision"] == "deny"]
        assert limited.attributes["claude_rbac.decision.reason"] == "rate_limited"

    def test_503_when_the_limits_storage_is_down(self, fake_claude: FakeClaude) -> None:
        app = build_app(make_rbac(fake_claude, storage="redis://127.0.0.1:1"))
        client = app.test_client()
        client.post("/login", json={"username": "uma"})
        response = client.post("/chat")
        assert response.status_code == 503
        assert response.get_json()["error"]["type"] == "api_error"
        assert response.get_json()["error"]["error_code"] == "backend_unavailable"
        assert fake_claude.count() == 0

    @pytest.mark.parametrize("order", ["before", "after"])
    def test_the_apps_errorhandler_wins(self, rbac: RBAC, fake_claude: FakeClaude, order: str) -> None:
        app = Flask(__name__)
        app.config.update(SECRET_KEY=SECRET)

        def handler(error: RBACError) -> tuple[dict[str, str], int]:
            return {"mine": error.reason}, error.status_code

        if order == "before":
            app.register_error_handler(RBACError, handler)
        ClaudeRBAC(app, rbac=rbac, principal_loader=lambda: Principal("vera", "viewer"))
        if order == "after":
            app.register_error_handler(RBACError, handler)
        add_routes(app)
        response = app.test_client().post("/chat")
        assert (response.status_code, response.get_json()) == (403, {"mine": "role_insufficient"})
        assert fake_claude.count() == 0

    def test_a_handler_for_one_error_class_keeps_ours_for_the_rest(self, rbac: RBAC) -> None:
        app = build_app(rbac)
        app.register_error_handler(NotAuthenticated, lambda error: redirect("/sign-in"))
        assert app.test_client().post("/chat").headers["Location"] == "/sign-in"
        client = app.test_client()
        client.post("/login", json={"username": "vera"})
        assert client.post("/chat").get_json()["error"]["error_code"] == "role_insufficient"

    def test_on_denied_callback_with_json_fallback(self, rbac: RBAC) -> None:
        def on_denied(error: RBACError) -> Any:
            return redirect("/sign-in") if isinstance(error, NotAuthenticated) else json_error(error)

        app = build_app(rbac, on_denied=on_denied)
        assert app.test_client().get("/page").status_code == 302
        client = app.test_client()
        client.post("/login", json={"username": "vera"})
        assert client.post("/chat").get_json()["error"]["type"] == "permission_error"

    def test_on_denied_abort_uses_the_apps_error_pages(self, fake_claude: FakeClaude) -> None:
        app = build_app(make_rbac(fake_claude), on_denied="abort")
        app.register_error_handler(403, lambda error: (f"<h1>Forbidden</h1><p>{error.description}</p>", 403))
        client = app.test_client()
        client.post("/login", json={"username": "vera"})
        response = client.post("/chat")
        assert response.status_code == 403
        assert response.get_data(as_text=True) == "<h1>Forbidden</h1><p>Role 'viewer' may not use this route.</p>"
        client.post("/login", json={"username": "uma"})
        assert client.post("/once").status_code == 200
        limited = client.post("/once")  # werkzeug's own 429 page, still with Retry-After
        assert limited.status_code == 429
        assert "Too Many Requests" in limited.get_data(as_text=True)
        assert int(limited.headers["Retry-After"]) >= 1
        assert fake_claude.count() == 1

    def test_rate_limit_headers_on_guarded_routes(self, fake_claude: FakeClaude) -> None:
        app = build_app(make_rbac(fake_claude), rate_limit_headers="ietf")
        client = app.test_client()
        client.post("/login", json={"username": "uma"})
        response = client.post("/chat")
        assert (response.headers["RateLimit-Limit"], response.headers["RateLimit-Remaining"]) == ("10", "9")
        assert 0 <= int(response.headers["RateLimit-Reset"]) <= 60
        assert "RateLimit-Limit" not in client.get("/whoami").headers


# -- streaming -------------------------------------------------------------------------------------


class TestStreaming:
    def test_sse_relay_with_stream_with_context(
        self, login: Any, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter
    ) -> None:
        response = login("uma").get("/stream?max_tokens=5000")
        assert response.status_code == 200
        assert response.mimetype == "text/event-stream"
        body = response.get_data(as_text=True)
        assert body.endswith("event: done\ndata: {}\n\n")
        assert "Hello" in body
        (call,) = fake_claude.calls()
        assert call.json["stream"] is True
        assert call.json["max_tokens"] == 512  # the user role's cap
        (call_span,) = spans_named(span_exporter, "anthropic.messages.create")
        assert call_span.attributes["enduser.id"] == "uma"
        assert call_span.attributes["claude_rbac.route"] == "/stream"
        assert call_span.attributes["gen_ai.request.max_tokens"] == 512

    def test_a_denied_stream_sends_nothing(self, login: Any, fake_claude: FakeClaude) -> None:
        assert login("vera").get("/stream").status_code == 403
        assert fake_claude.count() == 0


# -- path rules -------------------------------------------------------------------------------------


class TestRules:
    def test_rules_deny_before_the_view(self, rbac: RBAC, fake_claude: FakeClaude) -> None:
        app = build_app(rbac, rules={"/team/*": "admin"})
        power = app.test_client()
        power.post("/login", json={"username": "paul"})
        assert power.post("/team/chat").status_code == 403  # the view's own guard would have let power in
        assert power.post("/team").status_code == 403  # "/team/*" covers "/team" too
        admin = app.test_client()
        admin.post("/login", json={"username": "ada"})
        assert admin.post("/team/chat").status_code == 200
        assert fake_claude.count() == 1

    def test_a_rule_is_enough_for_current_claude(self, rbac: RBAC, fake_claude: FakeClaude) -> None:
        app = build_app(rbac, rules={"/free/*": "user"})

        @app.post("/free/chat")
        def free_chat() -> dict[str, Any]:
            message = current_claude().messages.create(
                model=HAIKU, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
            return {"text": message.content[0].text}

        assert app.test_client().post("/free/chat").status_code == 401
        client = app.test_client()
        client.post("/login", json={"username": "uma"})
        assert client.post("/free/chat").status_code == 200
        assert fake_claude.count() == 1


# -- spans -----------------------------------------------------------------------------------------


class TestSpans:
    def test_decision_spans_and_server_span(self, app: Flask, span_exporter: InMemorySpanExporter) -> None:
        app.wsgi_app = ServerSpan(app.wsgi_app)
        client = app.test_client()
        client.post("/login", json={"username": "vera"})
        assert client.post("/chat").status_code == 403
        client.post("/login", json={"username": "uma"})
        assert client.post("/chat").status_code == 200

        denied, allowed_route, allowed_call = authorize_spans(span_exporter)
        assert (
            dict(denied.attributes or {}).items()
            >= {
                "enduser.id": "vera",
                "user.roles": ("viewer",),
                "claude_rbac.decision": "deny",
                "claude_rbac.decision.reason": "role_insufficient",
                "claude_rbac.enforced": True,
                "claude_rbac.role": "viewer",
                "claude_rbac.required_role": "user",
                "claude_rbac.route": "/chat",
            }.items()
        )
        assert allowed_route.attributes["claude_rbac.decision"] == "allow"
        assert allowed_call.attributes["claude_rbac.operation"] == "messages.create"
        assert all(span.status.status_code is StatusCode.UNSET for span in authorize_spans(span_exporter))
        servers = [span for span in span_exporter.get_finished_spans() if span.kind is SpanKind.SERVER]
        chat_servers = [span for span in servers if span.name == "POST /chat"]
        assert [span.attributes["claude_rbac.decision"] for span in chat_servers] == ["deny", "allow"]
        assert [span.attributes["enduser.id"] for span in chat_servers] == ["vera", "uma"]
        assert denied.parent is not None and denied.parent.span_id == chat_servers[0].context.span_id

    def test_shadow_mode_records_the_denial_and_lets_the_request_through(
        self, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter
    ) -> None:
        app = build_app(make_rbac(fake_claude, mode="shadow"))
        client = app.test_client()
        client.post("/login", json={"username": "uma"})
        assert client.post("/team/chat").status_code == 200
        (span,) = [s for s in authorize_spans(span_exporter) if s.attributes.get("claude_rbac.required_role")]
        assert span.attributes["claude_rbac.decision"] == "deny"
        assert span.attributes["claude_rbac.enforced"] is False
        assert fake_claude.count() == 1


def test_async_view_gets_the_same_governed_client(login: Any, fake_claude: FakeClaude) -> None:
    response = login("uma").post("/async-chat", json={"model": OPUS})
    assert response.status_code == 403
    assert response.get_json()["error"]["error_code"] == "model_not_allowed"
    assert login("uma").post("/async-chat", json={"max_tokens": 9999}).status_code == 200
    assert [call.json["max_tokens"] for call in fake_claude.calls()] == [512]


def test_response_is_a_flask_response(app: Flask) -> None:
    with app.test_request_context():
        response = json_error(AccessDenied("No.", reason="role_insufficient"))
    assert isinstance(response, Response)
    assert (response.status_code, response.get_json()["error"]["message"]) == (403, "No.")


def test_policy_default_is_used_without_config(fake_claude: FakeClaude, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", PLACEHOLDER_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_claude.url)
    app = Flask(__name__)
    ClaudeRBAC(app, principal_loader=lambda: Principal("uma", "user"))
    close_later(app)
    add_routes(app)
    with app.app_context():
        assert set(current_rbac().policy.roles) == set(Policy.default().roles)
    assert app.test_client().post("/chat").status_code == 200
    assert fake_claude.api_keys_seen == [PLACEHOLDER_KEY]
