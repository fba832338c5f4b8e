"""The Python in docs/flask.md runs as written (fragments in the app they are meant for)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, request, stream_with_context
from flask_login import LoginManager, UserMixin, login_user
from werkzeug.test import Client

from claude_rbac import RBAC, Principal
from claude_rbac.testing import FakeClaude

from .conftest import HAIKU, OPUS, PLACEHOLDER_KEY, SECRET, close_later

DOC = Path(__file__).resolve().parents[3] / "docs" / "flask.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


@pytest.fixture
def anthropic_env(fake_claude: FakeClaude, monkeypatch: pytest.MonkeyPatch) -> FakeClaude:
    """What a reader has: ANTHROPIC_API_KEY (and, here, the base URL of a local Messages API)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", PLACEHOLDER_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_claude.url)
    return fake_claude


def test_the_doc_has_the_blocks_these_tests_run() -> None:
    five_lines, complete, streaming, wsgi = python_blocks()
    assert len(complete.strip().splitlines()) <= 45
    assert "requires_role" in five_lines
    assert "stream_with_context" in streaming
    assert "RBACMiddleware" in wsgi


def run_complete_app() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "docs_flask_app"}
    exec(compile(python_blocks()[1], str(DOC), "exec"), namespace)
    close_later(namespace["app"])
    return namespace


def test_the_complete_app_runs_as_written(anthropic_env: FakeClaude) -> None:
    app: Flask = run_complete_app()["app"]
    client = app.test_client()
    assert client.post("/chat", json={"prompt": "Hi"}).status_code == 401
    assert client.post("/login", data={"username": "mallory"}).status_code == 401
    assert client.post("/login", data={"username": "uma"}).get_json() == {"user": "uma", "role": "user"}
    reply = client.post("/chat", json={"prompt": "Hi"})
    assert reply.status_code == 200
    assert reply.get_json()["text"].startswith("Hello from FakeClaude")
    denied = client.post("/chat", json={"prompt": "Hi", "model": OPUS})
    assert (denied.status_code, denied.get_json()["error"]["error_code"]) == (403, "model_not_allowed")
    power = app.test_client()
    power.post("/login", data={"username": "paul"})
    assert power.post("/chat", json={"prompt": "Hi", "model": OPUS}).status_code == 200
    assert [(call.json["model"], call.json["max_tokens"]) for call in anthropic_env.calls()] == [
        (HAIKU, 512),
        (OPUS, 1024),
    ]


def test_the_five_line_setup_with_flask_login(anthropic_env: FakeClaude) -> None:
    class User(UserMixin):
        def __init__(self, user_id: str, role: str) -> None:
            self.id, self.role = user_id, role

    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET)
    users = {"uma": User("uma", "user"), "vera": User("vera", "viewer")}
    LoginManager(app).user_loader(users.get)

    @app.post("/login/<name>")
    def login(name: str) -> str:
        login_user(users[name])
        return "ok"

    exec(compile(python_blocks()[0], str(DOC), "exec"), {"app": app, "request": request, "__name__": "docs"})
    close_later(app)
    messages = {"messages": [{"role": "user", "content": "Hi"}]}
    client = app.test_client()
    assert client.post("/chat", json=messages).status_code == 401
    client.post("/login/vera")
    assert client.post("/chat", json=messages).status_code == 403
    client.post("/login/uma")
    response = client.post("/chat", json=messages)
    assert response.status_code == 200
    assert response.get_json()["type"] == "message"
    assert anthropic_env.count() == 1


def test_the_streaming_route(anthropic_env: FakeClaude) -> None:
    namespace = run_complete_app()
    namespace.update(json=json, Response=Response, stream_with_context=stream_with_context)
    exec(compile(python_blocks()[2], str(DOC), "exec"), namespace)
    client = namespace["app"].test_client()
    client.post("/login", data={"username": "uma"})
    response = client.get("/chat/stream?prompt=Hi")
    assert response.mimetype == "text/event-stream"
    text = "".join(json.loads(line[6:])["text"] for line in response.get_data(as_text=True).splitlines() if line)
    assert text == "Hello from FakeClaude, a local stand-in for the Messages API."
    assert anthropic_env.calls()[0].json["stream"] is True


def test_the_wsgi_middleware_snippet(anthropic_env: FakeClaude, rbac: RBAC) -> None:
    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        claude = namespace["get_claude"](environ)
        message = claude.messages.create(model=HAIKU, max_tokens=5, messages=[{"role": "user", "content": "x"}])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [message.content[0].text.encode()]

    def load_user(environ: dict[str, Any]) -> Principal | None:
        return Principal("uma", "user") if environ.get("HTTP_AUTHORIZATION") == "Bearer uma-token" else None

    namespace: dict[str, Any] = {"app": inner, "rbac": rbac, "load_user": load_user}
    exec(compile(python_blocks()[3], str(DOC), "exec"), namespace)
    client = Client(namespace["app"])
    assert client.get("/api/chat").status_code == 401
    assert client.get("/api/chat", headers={"Authorization": "Bearer uma-token"}).status_code == 200
    assert client.get("/admin/x", headers={"Authorization": "Bearer uma-token"}).status_code == 403
    assert anthropic_env.count() == 1
