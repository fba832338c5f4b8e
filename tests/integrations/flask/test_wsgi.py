"""claude_rbac.integrations.wsgi.RBACMiddleware around a plain WSGI app (werkzeug's test client, real FakeClaude)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from http.cookies import SimpleCookie
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from werkzeug.test import Client

from claude_rbac import RBAC, PolicyError, Principal
from claude_rbac.integrations.wsgi import (
    ADMISSION_KEY,
    PRINCIPAL_KEY,
    RBACMiddleware,
    get_claude,
    get_principal,
    normalize_path,
)
from claude_rbac.testing import FakeClaude

from .conftest import HAIKU, USERS, build_app, route_decisions

SESSIONS = {f"sid-{name}": name for name in USERS}
"""A server-side session store: the cookie holds an opaque id, the server knows who it is."""


def session_loader(environ: dict[str, Any]) -> Principal | None:
    cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
    name = SESSIONS.get(cookie["sid"].value) if "sid" in cookie else None
    return Principal(name, USERS[name]) if name else None


class Downstream:
    """The app behind the middleware: records what it saw, and asks Claude on /*/chat paths."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Principal | None]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        principal = get_principal(environ)
        self.seen.append((environ["PATH_INFO"], principal))
        body: dict[str, Any] = {"user": principal.id if principal else None}
        if environ["PATH_INFO"].endswith("/chat"):
            message = get_claude(environ).messages.create(
                model=HAIKU, max_tokens=5000, messages=[{"role": "user", "content": "hi"}]
            )
            body["text"] = message.content[0].text
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]


@pytest.fixture
def downstream() -> Downstream:
    return Downstream()


def client_for(app: Any, username: str | None) -> Client:
    client = Client(app)
    if username is not None:
        client.set_cookie("sid", f"sid-{username}")
    return client


def test_loader_runs_once_per_request_and_the_principal_is_in_the_environ(rbac: RBAC, downstream: Downstream) -> None:
    calls: list[str] = []

    def counting_loader(environ: dict[str, Any]) -> Principal | None:
        calls.append(environ["PATH_INFO"])
        return session_loader(environ)

    app = RBACMiddleware(downstream, rbac=rbac, principal_loader=counting_loader, rules={"/admin/*": "admin"})
    assert client_for(app, "paul").get("/home").status_code == 200
    assert client_for(app, None).get("/home").status_code == 200
    assert client_for(app, "ada").get("/admin/users").status_code == 200
    assert calls == ["/home", "/home", "/admin/users"]
    assert downstream.seen == [
        ("/home", Principal("paul", "power")),
        ("/home", None),
        ("/admin/users", Principal("ada", "admin")),
    ]


@pytest.mark.parametrize(
    ("username", "status", "error_code"),
    [(None, 401, "unauthenticated"), ("vera", 403, "role_insufficient"), ("paul", 403, "role_insufficient")],
)
def test_rules_deny_before_the_app_with_the_flask_error_bodies(
    rbac: RBAC,
    downstream: Downstream,
    fake_claude: FakeClaude,
    span_exporter: InMemorySpanExporter,
    username: str | None,
    status: int,
    error_code: str,
) -> None:
    app = RBACMiddleware(downstream, rbac=rbac, principal_loader=session_loader, rules={"/team/*": "admin"})
    response = client_for(app, username).post("/team/chat")
    assert response.status_code == status
    assert response.json["error"]["error_code"] == error_code
    assert downstream.seen == []
    assert fake_claude.count() == 0
    assert route_decisions(span_exporter) == [(username, "deny", error_code)]

    flask_app = build_app(rbac, rules={"/team/*": "admin"})
    flask_client = flask_app.test_client()
    if username is not None:
        flask_client.post("/login", json={"username": username})
    flask_response = flask_client.post("/team/chat")
    assert flask_response.status_code == status
    assert flask_response.get_data() == response.get_data()
    assert flask_response.headers["Content-Type"] == response.headers["Content-Type"] == "application/json"


def test_an_admitted_request_gets_its_governed_client(
    rbac: RBAC, downstream: Downstream, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter
) -> None:
    app = RBACMiddleware(downstream, rbac=rbac, principal_loader=session_loader, rules={"/api/*": "user"})
    response = client_for(app, "uma").post("/api/chat")
    assert response.status_code == 200
    assert response.json["user"] == "uma"
    (call,) = fake_claude.calls()
    assert call.json["max_tokens"] == 512  # the user role's cap
    assert route_decisions(span_exporter)[0] == ("uma", "allow", "allowed")
    call_decisions = [s for s in span_exporter.get_finished_spans() if s.name == "anthropic.messages.create"]
    assert call_decisions[0].attributes["claude_rbac.route"] == "/api/*"


def test_get_claude_without_a_guard_raises(rbac: RBAC, downstream: Downstream, fake_claude: FakeClaude) -> None:
    app = RBACMiddleware(downstream, rbac=rbac, principal_loader=session_loader, rules={"/api/*": "user"})
    with pytest.raises(RuntimeError, match="No claude_rbac guard admitted this request"):
        client_for(app, "ada").post("/open/chat")
    assert fake_claude.count() == 0


@pytest.mark.parametrize(
    "path", ["/admin", "/admin/", "/admin/x", "//admin/x", "/x/../admin/y", "/admin/./y", "/./admin", "/admin//"]
)
def test_rules_match_the_path_the_router_serves(rbac: RBAC, downstream: Downstream, path: str) -> None:
    app = RBACMiddleware(downstream, rbac=rbac, principal_loader=session_loader, rules={"/admin/*": "admin"})
    raw = {"PATH_INFO": path}  # as the server hands it over (a test client would read "//admin" as a host)
    assert client_for(app, "uma").get("/", environ_overrides=raw).status_code == 403
    assert client_for(app, "ada").get("/", environ_overrides=raw).status_code == 200
    assert downstream.seen == [(path, Principal("ada", "admin"))]


def test_a_rule_covers_only_its_own_prefix(rbac: RBAC, downstream: Downstream) -> None:
    app = RBACMiddleware(downstream, rbac=rbac, principal_loader=session_loader, rules={"/admin/*": "admin"})
    for path in ("/administrator", "/admins/x", "/x/admin"):
        assert client_for(app, "uma").get(path).status_code == 200


@pytest.mark.parametrize("order", [1, -1])
def test_every_matching_rule_applies_whatever_the_order(rbac: RBAC, downstream: Downstream, order: int) -> None:
    rules = dict(list({"/api/*": "user", "/api/admin/*": "admin"}.items())[::order])
    app = RBACMiddleware(downstream, rbac=rbac, principal_loader=session_loader, rules=rules)
    assert client_for(app, "uma").get("/api/admin/users").status_code == 403
    assert client_for(app, "uma").get("/api/users").status_code == 200
    assert client_for(app, "vera").get("/api/users").status_code == 403
    assert client_for(app, "ada").get("/api/admin/users").status_code == 200


def test_wildcards_inside_a_pattern(rbac: RBAC, downstream: Downstream) -> None:
    app = RBACMiddleware(downstream, rbac=rbac, principal_loader=session_loader, rules={"/org/*/billing": "admin"})
    assert client_for(app, "paul").get("/org/acme/billing").status_code == 403
    assert client_for(app, "paul").get("/org/acme/billing/").status_code == 403
    assert client_for(app, "paul").get("/org/acme/reports").status_code == 200


def test_a_broken_loader_denies_guarded_paths_and_logs(
    rbac: RBAC, downstream: Downstream, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(environ: dict[str, Any]) -> Principal | None:
        raise ConnectionError("session store down")

    app = RBACMiddleware(downstream, rbac=rbac, principal_loader=broken, rules={"/api/*": "user"})
    with caplog.at_level(logging.ERROR, logger="claude_rbac"):
        assert client_for(app, "ada").get("/api/x").status_code == 401
    assert "principal loader" in caplog.text
    assert "raised; denying" in caplog.text
    assert client_for(app, "ada").get("/public").status_code == 200  # nobody signed in, and nothing guarded
    assert downstream.seen == [("/public", None)]


def test_configuration_errors_surface_at_construction(rbac: RBAC, downstream: Downstream) -> None:
    with pytest.raises(PolicyError, match="superuser"):
        RBACMiddleware(downstream, rbac=rbac, principal_loader=session_loader, rules={"/x/*": "superuser"})
    with pytest.raises(ValueError, match="must start with '/'"):
        RBACMiddleware(downstream, rbac=rbac, principal_loader=session_loader, rules={"admin/*": "admin"})


def test_flask_inside_the_middleware_uses_its_principal(rbac: RBAC, fake_claude: FakeClaude) -> None:
    flask_calls: list[str] = []

    def flask_loader() -> Principal | None:
        flask_calls.append("called")
        return None

    flask_app = build_app(rbac, principal_loader=flask_loader)
    flask_app.wsgi_app = RBACMiddleware(
        flask_app.wsgi_app, rbac=rbac, principal_loader=session_loader, rules={"/notes": "admin"}
    )
    client = flask_app.test_client()
    client.set_cookie("sid", "sid-paul")
    assert client.post("/notes").status_code == 403  # the middleware's rule
    assert client.post("/team/chat").status_code == 200  # Flask's guard, with the middleware's principal
    assert client.get("/whoami").get_json() == {"user": "paul", "role": "power"}
    assert flask_calls == []
    assert fake_claude.count() == 1


def test_the_environ_keys_hold_what_the_request_passed(rbac: RBAC) -> None:
    captured: dict[str, Any] = {}

    def capture(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        captured.update(environ)
        start_response("204 No Content", [])
        return []

    app = RBACMiddleware(capture, rbac=rbac, principal_loader=session_loader, rules={"/a/*": "user"})
    client_for(app, "uma").get("/a/b")
    admission = captured[ADMISSION_KEY]
    assert captured[PRINCIPAL_KEY] == admission.principal == Principal("uma", "user")
    assert (admission.guards[-1].role, admission.route, admission.rbac) == ("user", "/a/*", rbac)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("", "/"), ("/", "/"), ("//a//b/", "/a/b"), ("/a/./b/../c", "/a/c"), ("/../../a", "/a"), ("/a/..", "/")],
)
def test_normalize_path(raw: str, normalized: str) -> None:
    assert normalize_path(raw) == normalized
