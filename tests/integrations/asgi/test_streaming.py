"""Relaying Claude's stream through the middleware: bytes untouched, usage settled, spans ended however it ends.

The end-to-end cases run one real uvicorn server on 127.0.0.1 (a thread of this process, so the spans
land in the test's exporter); the rest use Starlette's TestClient.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from anthropic import AsyncAnthropic
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from claude_rbac import RBAC
from claude_rbac.integrations.starlette import EventStreamResponse, RBACMiddleware, get_claude, requires_role
from claude_rbac.policy import estimate_input_tokens
from claude_rbac.testing import FakeClaude, InMemoryMetrics

from .conftest import (
    TokenBackend,
    bearer,
    closing_lifespan,
    policy_with,
    serving,
    spans_named,
    uvicorn_server,
    wait_for,
)

TPM = 10_000
HAIKU = "claude-haiku-4-5"


async def open_stream(request: Request) -> Any:
    """Open Claude's stream before answering, so a denial is still a proper 4xx response."""
    claude: AsyncAnthropic = get_claude(request)
    return await claude.messages.create(
        model=request.query_params.get("model", HAIKU),
        max_tokens=100,
        messages=[{"role": "user", "content": request.query_params.get("prompt", "Tell me a story")}],
        stream=True,
    )


async def relay(stream: Any, stop_after: str | None = None) -> AsyncIterator[str]:
    async with stream:  # closes Claude's stream on completion, on break, and when the generator is closed
        async for event in stream:
            yield f"event: {event.type}\ndata: {event.model_dump_json()}\n\n"
            if event.type == stop_after:
                break


@requires_role("user")
async def plain(request: Request) -> Response:
    return StreamingResponse(relay(await open_stream(request)), media_type="text/event-stream")


@requires_role("user")
async def sse(request: Request) -> Response:
    return EventStreamResponse(relay(await open_stream(request)))


@requires_role("user")
async def first_words(request: Request) -> Response:
    return StreamingResponse(relay(await open_stream(request), stop_after="content_block_delta"))


def streaming_app(rbac: RBAC) -> Starlette:
    return Starlette(
        routes=[Route("/plain", plain), Route("/sse", sse), Route("/first-words", first_words)],
        middleware=[
            Middleware(AuthenticationMiddleware, backend=TokenBackend()),
            Middleware(RBACMiddleware, rbac=rbac),
        ],
        lifespan=closing_lifespan(rbac),
    )


@pytest.fixture
def metrics() -> Any:
    reader = InMemoryMetrics()
    yield reader
    reader.shutdown()


@pytest.fixture
def rbac(make_rbac: Any, metrics: InMemoryMetrics) -> RBAC:
    return make_rbac(policy_with(tpm=TPM), meter_provider=metrics.provider)


def events_of(body: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def tpm_remaining(rbac: RBAC, user: str = "uma") -> int:
    buckets = rbac.quota.buckets(role="user", principal_id=user, rpm=None, tpm=TPM, tokens=1)
    ((_, remaining, _),) = rbac.quota.remaining(buckets)
    return remaining


def reserved_for(fake_claude: FakeClaude) -> int:
    body = fake_claude.calls()[-1].json
    return estimate_input_tokens(body) + body["max_tokens"]


@pytest.mark.parametrize("path", ["/plain", "/sse"])
def test_relay_completes_and_settles_usage(
    rbac: RBAC, fake_claude: FakeClaude, span_exporter: Any, metrics: InMemoryMetrics, path: str
) -> None:
    with serving(streaming_app(rbac), rbac) as client:
        response = client.get(path, headers=bearer("uma"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = events_of(response.text)
    assert [name for name, _ in events[:2]] == ["message_start", "content_block_start"]
    assert [name for name, _ in events[-3:]] == ["content_block_stop", "message_delta", "message_stop"]
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert text == "Hello from FakeClaude, a local stand-in for the Messages API."

    usage = events[0][1]["message"]["usage"]["input_tokens"], events[-2][1]["usage"]["output_tokens"]
    assert usage[1] == 10
    assert tpm_remaining(rbac) == TPM - sum(usage), "the final message_delta settled the reservation"
    tokens = {attrs["gen_ai.token.type"]: value for attrs, value in metrics.points("claude_rbac.tokens")}
    assert tokens == {"input": usage[0], "output": usage[1]}
    (call,) = spans_named(span_exporter, "anthropic.messages.create")
    assert call.end_time is not None
    assert call.attributes["claude_rbac.decision"] == "allow"
    assert call.attributes["enduser.id"] == "uma"
    assert fake_claude.count() == 1


def test_early_break_ends_the_span_and_keeps_the_reservation(
    rbac: RBAC, fake_claude: FakeClaude, span_exporter: Any
) -> None:
    fake_claude.stream_delay = 0.02
    with serving(streaming_app(rbac), rbac) as client:
        response = client.get("/first-words", headers=bearer("uma"))
    events = events_of(response.text)
    assert [name for name, _ in events] == ["message_start", "content_block_start", "content_block_delta"]
    (call,) = spans_named(span_exporter, "anthropic.messages.create")
    assert call.end_time is not None, "the SDK call span ended at the break"
    assert tpm_remaining(rbac) == TPM - reserved_for(fake_claude), "an unfinished stream is charged what it reserved"
    wait_for(lambda: fake_claude.aborted_streams == 1, message="FakeClaude to see the stream closed")


def test_denied_stream_is_an_error_response_not_a_broken_stream(rbac: RBAC, fake_claude: FakeClaude) -> None:
    with serving(streaming_app(rbac), rbac) as client:
        denied_model = client.get("/sse", params={"model": "claude-opus-4-7"}, headers=bearer("uma"))
        denied_role = client.get("/sse", headers=bearer("vera"))
    assert denied_model.status_code == 403
    assert denied_model.headers["content-type"] == "application/json"
    assert denied_model.json()["error"]["error_code"] == "model_not_allowed"
    assert denied_role.status_code == 403
    assert denied_role.json()["error"]["error_code"] == "role_insufficient"
    assert fake_claude.requests == []


# -- one real server --------------------------------------------------------------------------------


def test_real_server_streams_and_handles_disconnect(rbac: RBAC, fake_claude: FakeClaude, span_exporter: Any) -> None:
    fake_claude.stream_delay = 0.05  # 17 events: about 0.85 s for the whole answer
    with uvicorn_server(streaming_app(rbac)) as url, httpx.Client(base_url=url, timeout=10) as http:
        # Streamed, not buffered: the first event arrives long before the last.
        started = time.monotonic()
        with http.stream("GET", "/sse", headers=bearer("uma")) as response:
            assert response.status_code == 200
            chunks = response.iter_raw()
            first = next(chunks)
            first_at = time.monotonic() - started
            rest = b"".join(chunks)
        total = time.monotonic() - started
        assert first.startswith(b"event: message_start")
        assert first_at < total / 2, (first_at, total)
        assert rest.rstrip().endswith(b'{"type":"message_stop"}')
        wait_for(lambda: len(spans_named(span_exporter, "anthropic.messages.create")) == 1, message="the span")
        remaining_after_full = tpm_remaining(rbac)

        # The client goes away after the first event: the relay is closed, Claude's stream with it.
        span_exporter.clear()
        started = time.monotonic()
        with http.stream("GET", "/sse", headers=bearer("uma")) as response:
            next(response.iter_raw())
        wait_for(lambda: spans_named(span_exporter, "anthropic.messages.create"), message="the span to end")
        ended_after = time.monotonic() - started
        assert ended_after < 0.7, f"the span ended {ended_after:.2f}s in: at the disconnect, not the stream's end"
        wait_for(lambda: fake_claude.aborted_streams == 1, message="FakeClaude to see the stream closed")
        charged = remaining_after_full - tpm_remaining(rbac)
        assert charged == reserved_for(fake_claude), "cut short: charged the whole reservation"

        # Denials over the wire are plain Anthropic errors.
        denied = http.get("/sse", headers=bearer("vera"))
        assert denied.status_code == 403
        assert denied.json()["error"]["type"] == "permission_error"
        anonymous = http.get("/sse")
        assert anonymous.status_code == 401
    assert fake_claude.count() == 2


def test_event_stream_response_closes_the_relay_when_send_fails(
    rbac: RBAC, fake_claude: FakeClaude, span_exporter: Any
) -> None:
    """ASGI 2.4 servers report a gone client by failing ``send``; the relay must not wait for the GC."""
    import asyncio

    from starlette.requests import ClientDisconnect

    fake_claude.stream_delay = 0.02
    app = streaming_app(rbac)
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/sse",
        "raw_path": b"/sse",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test"), *[(k.encode(), v.encode()) for k, v in bearer("uma").items()]],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        if not sent:
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if len(sent) == 2:
            raise OSError("client went away")
        sent.append(message)

    async def scenario() -> None:
        try:
            with pytest.raises(ClientDisconnect):
                await app(scope, receive, send)
            assert spans_named(span_exporter, "anthropic.messages.create"), "closed at once, not at the next GC"
        finally:
            from .conftest import aclose_clients

            await aclose_clients(rbac)

    asyncio.run(scenario())
    assert sent[0]["status"] == 200
    assert sent[1]["body"].startswith(b"event: message_start")
    wait_for(lambda: fake_claude.aborted_streams == 1, message="FakeClaude to see the stream closed")
