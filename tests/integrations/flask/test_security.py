"""A role is never taken from the client: forged headers, query parameters and cookies change nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from itsdangerous import base64_encode
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from werkzeug.test import Client

from claude_rbac import RBAC
from claude_rbac.integrations.wsgi import RBACMiddleware
from claude_rbac.testing import FakeClaude

from .conftest import build_app, route_decisions
from .test_wsgi import Downstream, session_loader

FORGERIES = [
    pytest.param({"headers": {"X-Role": "admin"}}, id="X-Role-header"),
    pytest.param({"headers": {"X_Role": "admin"}}, id="X_Role-header"),
    pytest.param({"query_string": {"role": "admin"}}, id="role-query"),
    pytest.param({"query_string": {"role": "admin", "user": "ada", "username": "ada"}}, id="user-query"),
    pytest.param({"headers": {"Cookie": "role=admin; username=ada; user_id=ada"}}, id="plain-cookies"),
    pytest.param({"headers": {"X-User": "ada", "X-Forwarded-User": "ada", "Remote-User": "ada"}}, id="user-headers"),
    pytest.param({"json": {"role": "admin", "username": "ada", "prompt": "hi"}}, id="json-body"),
]


def flask_client(app: Flask, username: str | None) -> Any:
    client = app.test_client()
    if username is not None:
        client.post("/login", json={"username": username})
    return client


@pytest.mark.parametrize("forgery", FORGERIES)
@pytest.mark.parametrize(("username", "status"), [(None, 401), ("uma", 403)])
def test_flask_ignores_forged_roles(
    app: Flask,
    fake_claude: FakeClaude,
    span_exporter: InMemorySpanExporter,
    forgery: dict[str, Any],
    username: str | None,
    status: int,
) -> None:
    client = flask_client(app, username)
    if "Cookie" in forgery.get("headers", {}):
        for pair in forgery["headers"]["Cookie"].split("; "):
            name, value = pair.split("=")
            client.set_cookie(name, value)
        forgery = {}
    assert client.post("/notes", **forgery).status_code == status
    assert client.get("/whoami", **{k: v for k, v in forgery.items() if k != "json"}).get_json() == {
        "user": username,
        "role": "user" if username else None,
    }
    assert fake_claude.count() == 0
    assert route_decisions(span_exporter) == [
        (username, "deny", "unauthenticated" if status == 401 else "role_insufficient")
    ]


@pytest.mark.parametrize("forgery", FORGERIES)
def test_wsgi_middleware_ignores_forged_roles(rbac: RBAC, fake_claude: FakeClaude, forgery: dict[str, Any]) -> None:
    downstream = Downstream()
    app = RBACMiddleware(downstream, rbac=rbac, principal_loader=session_loader, rules={"/admin/*": "admin"})
    client = Client(app)
    client.set_cookie("sid", "sid-uma")
    headers = {**forgery.get("headers", {})}
    if "Cookie" in headers:
        headers["Cookie"] += "; sid=sid-uma"
    kwargs = {**forgery, "headers": headers}
    assert client.post("/admin/chat", **kwargs).status_code == 403
    assert downstream.seen == []
    assert fake_claude.count() == 0


def _forge_payload(cookie: str, data: dict[str, Any]) -> str:
    """Swap the payload of a signed Flask session cookie, keeping its timestamp and signature."""
    payload = base64_encode(json.dumps(data, separators=(",", ":"))).decode()
    _, timestamp, signature = cookie.rsplit(".", 2)
    return f"{payload}.{timestamp}.{signature}"


def _tamperings(app: Flask, uma_cookie: str) -> dict[str, str]:
    other = Flask(__name__)
    other.secret_key = "not-the-apps-secret"
    wrong_key = other.session_interface.get_signing_serializer(other).dumps({"username": "ada"})
    # Not the last character: its low bits may be base64 padding, and changing only those changes nothing.
    flipped = uma_cookie[:-2] + ("A" if uma_cookie[-2] != "A" else "B") + uma_cookie[-1]
    return {
        "payload-swapped": _forge_payload(uma_cookie, {"username": "ada"}),
        "signed-with-another-key": wrong_key,
        "signature-flipped": flipped,
        "unsigned-json": json.dumps({"username": "ada"}),
        "empty": "",
    }


@pytest.mark.parametrize(
    "tampering", ["payload-swapped", "signed-with-another-key", "signature-flipped", "unsigned-json", "empty"]
)
def test_a_tampered_session_cookie_signs_nobody_in(
    app: Flask, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter, tampering: str
) -> None:
    client = flask_client(app, "uma")
    uma_cookie = client.get_cookie("session").value
    assert client.post("/chat").status_code == 200  # the genuine cookie works
    client.set_cookie("session", _tamperings(app, uma_cookie)[tampering])
    assert client.post("/notes").status_code == 401
    assert client.post("/chat").status_code == 401
    assert client.get("/whoami").get_json() == {"user": None, "role": None}
    assert fake_claude.count() == 1
    assert route_decisions(span_exporter)[1:] == [(None, "deny", "unauthenticated")] * 2


def test_a_forged_role_in_a_real_session_is_not_a_role_lookup(rbac: RBAC, fake_claude: FakeClaude) -> None:
    """The example apps keep only the username in the session; a role stored beside it is never read."""
    app = build_app(rbac)
    client = flask_client(app, "uma")
    with client.session_transaction() as session:
        session["role"] = "admin"
    assert client.post("/notes").status_code == 403
    assert fake_claude.count() == 0
