"""The app in Starlette: ``RBACMiddleware``, ``@requires_role``, ``get_claude(request)`` and ``EventStreamResponse``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from claude_rbac import RBAC, Principal
from claude_rbac.integrations.starlette import EventStreamResponse, RBACMiddleware, get_claude, requires_role

from ..server_spans import ASGIServerSpans
from ..trail import SENTINEL_PROMPT
from .asgi_app import StarletteHarness
from .common import answer, message_args, principal_for, sse

SYNC_PROMPT = "a sync endpoint cannot read the body: " + SENTINEL_PROMPT
ROUTES = {"/chat": "/chat", "/stream": "/stream", "/schat": "/schat"}


def token_principal(connection: HTTPConnection) -> Principal | None:
    return principal_for(connection.headers.get("authorization"))


@requires_role("user")
async def chat(request: Request) -> Response:
    message = await get_claude(request).messages.create(**message_args(await request.json()))
    return JSONResponse(answer(message))


@requires_role("user")
def sync_chat(request: Request) -> Response:
    """A sync endpoint: Starlette runs it in a worker thread, and get_claude() hands it the sync client."""
    message = get_claude(request).messages.create(**message_args({"prompt": SYNC_PROMPT}))
    return JSONResponse(answer(message))


@requires_role("user")
async def stream(request: Request) -> Response:
    opened = await get_claude(request).messages.create(**message_args(await request.json()), stream=True)
    return EventStreamResponse(relay(opened))


async def relay(opened: Any) -> AsyncIterator[bytes]:
    async with opened:
        async for event in opened:
            if (chunk := sse(event)) is not None:
                yield chunk


def build(options: Mapping[str, Any]) -> StarletteHarness:
    rbac = RBAC(**options)
    app = Starlette(
        routes=[
            Route("/chat", chat, methods=["POST"]),
            Route("/schat", sync_chat, methods=["POST"]),
            Route("/stream", stream, methods=["POST"]),
        ],
        middleware=[Middleware(RBACMiddleware, rbac=rbac, principal_loader=token_principal)],
    )
    return StarletteHarness("starlette", ASGIServerSpans(app), rbac, ROUTES)
