"""No blocking call on the event loop: a slow limits storage does not stall other requests.

Redis is reached through a local TCP proxy that holds every reply for ``DELAY`` seconds. A guarded
chat (whose governed client counts the request on ``async+redis://``) is started, and while it waits
on the storage an unguarded ``/ping`` is timed. A control route that makes a *sync* storage call on the
loop shows the measurement catches a block when there is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from anthropic import AsyncAnthropic
from fastapi import Depends, FastAPI, Request

from claude_rbac import RBAC, Policy
from claude_rbac.integrations.fastapi import RBACMiddleware, get_principal, requires_role
from claude_rbac.testing import FakeClaude

from .conftest import TOKENS, aclose_clients, bearer

DELAY = 0.6
"""Seconds each Redis reply is held: below the storage timeout these tests set, far above a ping (so a loaded
machine's slow ping cannot pass for a stalled loop)."""
STORAGE_OPTIONS = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}

pytestmark = pytest.mark.redis


class SlowProxy:
    """A TCP proxy on 127.0.0.1 that forwards to ``target`` and delays every reply chunk by ``delay``."""

    def __init__(self, target_host: str, target_port: int, delay: float) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-redis-proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._writers |= {client_writer, upstream_writer}

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while chunk := await reader.read(65536):
                    if delay:
                        await asyncio.sleep(delay)
                    writer.write(chunk)
                    await writer.drain()
            writer.close()

        await asyncio.gather(pump(client_reader, upstream_writer, 0), pump(upstream_reader, client_writer, self.delay))

    def __enter__(self) -> SlowProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for writer in self._writers:
                writer.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@pytest.fixture
def slow_redis(redis_url: str) -> Iterator[str]:
    parts = urlsplit(redis_url)
    with SlowProxy(parts.hostname or "127.0.0.1", parts.port or 6379, DELAY) as proxy:
        yield f"redis://127.0.0.1:{proxy.port}/0"


def token_principal(connection: Any) -> Any:
    from claude_rbac import Principal

    _, _, token = connection.headers.get("authorization", "").partition(" ")
    if token not in TOKENS:
        return None
    name, role = TOKENS[token]
    return Principal(name, role)


def build(rbac: RBAC) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RBACMiddleware, rbac=rbac, principal_loader=token_principal)

    @app.post("/chat")
    async def chat(claude: AsyncAnthropic = Depends(requires_role("user"))) -> dict[str, Any]:  # noqa: B008
        message = await claude.messages.create(
            model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "Hi"}]
        )
        return {"text": message.content[0].text}  # type: ignore[union-attr]

    @app.post("/blocking-control")
    async def blocking(request: Request) -> dict[str, Any]:
        # What the integration must never do: a sync storage round trip on the event loop.
        return {"buckets": rbac.rate_limits(get_principal(request))}

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "ok"}

    return app


async def ping_during(app: FastAPI, path: str) -> tuple[httpx.Response, float, bool]:
    """Start ``path``; 30 ms later, while it is in flight, send a ``/ping``.

    Returns the slow response, how late the ping's answer came (beyond the 30 ms it was scheduled for:
    a blocked loop delays both the scheduling and the answer) and whether the slow request was still running.
    """
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        started = time.perf_counter()
        slow = asyncio.create_task(client.post(path, headers=bearer("uma")))
        await asyncio.sleep(0.03)  # the slow request is now waiting on the storage
        pong = await client.get("/ping")
        elapsed = time.perf_counter() - started - 0.03
        overlapped = not slow.done()
        response = await slow
    assert pong.json() == {"pong": "ok"}
    return response, elapsed, overlapped


def test_slow_storage_does_not_stall_other_requests(slow_redis: str, fake_claude: FakeClaude, key_prefix: str) -> None:
    rbac = RBAC(
        Policy.default(),
        storage=slow_redis,
        storage_options=STORAGE_OPTIONS,
        key_prefix=key_prefix,
        api_key="sk-test",
        base_url=fake_claude.url,
    )
    app = build(rbac)

    async def scenario() -> tuple[Any, ...]:
        try:
            return await ping_during(app, "/chat"), await ping_during(app, "/blocking-control")
        finally:
            await aclose_clients(rbac)

    (chat, chat_ping, chat_overlapped), (control, control_ping, _) = asyncio.run(scenario())

    assert chat.status_code == 200, chat.text
    assert chat_overlapped, "the chat was still waiting on the slow storage when the ping came back"
    assert chat_ping < DELAY / 2, f"a ping came {chat_ping:.3f}s late while the chat waited on the storage"
    assert fake_claude.count() == 1
    assert rbac.rate_limits(token_principal(_Headers(bearer("uma"))))[0]["remaining"] == 9, "counted on Redis"

    assert control.status_code == 200
    assert control_ping >= DELAY * 0.8, "the control's sync call on the loop does stall the ping"


class _Headers:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
