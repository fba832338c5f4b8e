"""A guarded websocket endpoint over a real uvicorn server and a real websocket client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from claude_rbac import RBAC
from claude_rbac.integrations.starlette import RBACMiddleware, get_claude, requires_role
from claude_rbac.testing import FakeClaude

from .conftest import TokenBackend, bearer, closing_lifespan, uvicorn_server


@requires_role("user")
async def ws_chat(websocket: WebSocket) -> None:
    await websocket.accept()
    prompt = await websocket.receive_text()
    message = await get_claude(websocket).messages.create(
        model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": prompt}]
    )
    await websocket.send_text(message.content[0].text)
    await websocket.close()


def app(rbac: RBAC) -> Starlette:
    return Starlette(
        routes=[WebSocketRoute("/ws", ws_chat)],
        middleware=[
            Middleware(AuthenticationMiddleware, backend=TokenBackend()),
            Middleware(RBACMiddleware, rbac=rbac),
        ],
        lifespan=closing_lifespan(rbac),
    )


def test_over_a_real_server(make_rbac: Callable[..., RBAC], fake_claude: FakeClaude) -> None:
    with uvicorn_server(app(make_rbac()), ws="websockets-sansio") as url:
        ws_url = url.replace("http://", "ws://") + "/ws"

        async def chat(headers: dict[str, str]) -> str:
            async with connect(ws_url, additional_headers=headers, open_timeout=5) as ws:
                await ws.send("Hi over the wire")
                return str(await asyncio.wait_for(ws.recv(), 5))

        async def refused(headers: dict[str, str]) -> int:
            # The guard closes (1008) before accepting; before the handshake, ASGI servers answer that
            # as an HTTP 403, which the client reports as a rejected handshake.
            with pytest.raises(InvalidStatus) as info:
                async with connect(ws_url, additional_headers=headers, open_timeout=5):
                    pass
            return int(info.value.response.status_code)

        assert asyncio.run(chat(bearer("uma"))).startswith("Hello from FakeClaude")
        assert asyncio.run(refused({})) == 403  # signed out
        assert asyncio.run(refused(bearer("vera"))) == 403  # a viewer
    assert fake_claude.count() == 1
    assert fake_claude.calls()[0].json["messages"] == [{"role": "user", "content": "Hi over the wire"}]
