"""The Flask integration behind a real werkzeug server on 127.0.0.1, driven over real HTTP with httpx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from flask import Flask
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from claude_rbac.testing import FakeClaude

from .conftest import ServerSpan, authorize_spans, route_decisions, serve, spans_named

TIMEOUT = httpx.Timeout(5.0)


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    app.wsgi_app = ServerSpan(app.wsgi_app)
    with serve(app) as url:
        yield url


@contextmanager
def signed_in(base_url: str, username: str | None) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        if username is not None:
            assert client.post("/login", json={"username": username}).status_code == 200
        yield client


def wait_for(condition: object, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.02)
    return False


def test_guards_over_http(base_url: str, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter) -> None:
    with signed_in(base_url, None) as anonymous, signed_in(base_url, "vera") as viewer:
        assert anonymous.post("/chat").status_code == 401
        denied = viewer.post("/chat")
        assert denied.status_code == 403
        assert denied.headers["content-type"] == "application/json"
        assert denied.json()["error"]["error_code"] == "role_insufficient"
    with signed_in(base_url, "uma") as user:
        response = user.post("/chat", json={"prompt": "hello"})
        assert response.status_code == 200
        assert response.json()["user"] == "uma"
        assert user.post("/async-chat").status_code == 200
        assert user.post("/team/chat").status_code == 403
    assert fake_claude.count() == 2
    assert route_decisions(span_exporter) == [
        (None, "deny", "unauthenticated"),
        ("vera", "deny", "role_insufficient"),
        ("uma", "allow", "allowed"),
        ("uma", "allow", "allowed"),
        ("uma", "deny", "role_insufficient"),
    ]
    servers = [span for span in span_exporter.get_finished_spans() if span.kind is SpanKind.SERVER]
    assert {span.attributes.get("claude_rbac.decision") for span in servers if span.name != "POST /login"} == {
        "allow",
        "deny",
    }


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        pytest.param({"X-Role": "admin"}, {}, id="X-Role"),
        pytest.param({"X_Role": "admin"}, {}, id="X_Role"),
        pytest.param({}, {"role": "admin"}, id="role-query"),
        pytest.param({"Cookie": "role=admin"}, {}, id="role-cookie"),
    ],
)
def test_forged_roles_over_http(
    base_url: str, fake_claude: FakeClaude, headers: dict[str, str], params: dict[str, str]
) -> None:
    with signed_in(base_url, None) as anonymous:
        assert anonymous.post("/notes", headers=headers, params=params).status_code == 401
    with signed_in(base_url, "uma") as user:
        if "Cookie" in headers:
            user.cookies.set("role", "admin")
            headers = {}
        assert user.post("/notes", headers=headers, params=params).status_code == 403
        assert user.get("/whoami", headers=headers, params=params).json() == {"user": "uma", "role": "user"}
    assert fake_claude.count() == 0


def test_a_tampered_session_cookie_over_http(base_url: str, fake_claude: FakeClaude) -> None:
    with signed_in(base_url, "uma") as user:
        cookie = user.cookies["session"]
        payload, rest = cookie.split(".", 1)
        user.cookies.clear()
        user.cookies.set("session", f"{payload}x.{rest}")
        assert user.post("/chat").status_code == 401
    assert fake_claude.count() == 0


def test_rate_limit_over_http(base_url: str, fake_claude: FakeClaude) -> None:
    with signed_in(base_url, "uma") as user:
        assert user.post("/once").status_code == 200
        limited = user.post("/once")
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"]["type"] == "rate_limit_error"
    assert fake_claude.count() == 1


def test_sse_stream_to_the_end(base_url: str, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter) -> None:
    with signed_in(base_url, "uma") as user, user.stream("GET", "/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-2:] == ["event: done", "data: {}"]
    assert sum(line.startswith('data: {"text"') for line in lines) == 10
    (call_span,) = spans_named(span_exporter, "anthropic.messages.create")
    assert call_span.attributes["gen_ai.usage.output_tokens"] == 10
    assert fake_claude.aborted_streams == 0


def test_client_disconnect_ends_the_stream_and_its_span(
    base_url: str, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter
) -> None:
    fake_claude.output_tokens = 400
    fake_claude.stream_delay = 0.02  # about 8 s to the end: the test must not wait for it
    started = time.monotonic()
    with signed_in(base_url, "uma") as user, user.stream("GET", "/stream?max_tokens=500") as response:
        assert response.status_code == 200
        first = next(line for line in response.iter_lines() if line)
        assert first.startswith('data: {"text"')
    # The browser is gone: werkzeug closes the response, the generator closes Claude's stream.
    assert wait_for(lambda: spans_named(span_exporter, "anthropic.messages.create"))
    assert wait_for(lambda: fake_claude.aborted_streams == 1)
    assert time.monotonic() - started < 5
    (call_span,) = spans_named(span_exporter, "anthropic.messages.create")
    assert call_span.attributes["enduser.id"] == "uma"
    assert call_span.attributes["claude_rbac.decision"] == "allow"
    assert "gen_ai.usage.output_tokens" not in call_span.attributes  # cut short
    assert [s.attributes["claude_rbac.decision"] for s in authorize_spans(span_exporter)] == ["allow", "allow"]
