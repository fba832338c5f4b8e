"""A plain ASGI app behind ``claude_rbac.integrations.asgi.RBACMiddleware``; the route guard is a core ``Guard``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import anyio
from starlette.testclient import TestClient

from claude_rbac import RBAC
from claude_rbac.integrations import Guard
from claude_rbac.integrations.asgi import RBACMiddleware, Receive, Scope, Send, principal_of, rbac_of

from ..server_spans import ASGIServerSpans
from .common import Reply, answer, bearer, message_args, principal_for, sse

ROUTES = {"/chat": "/chat", "/stream": "/stream"}
USER = Guard.declare("user")


async def chat_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    body = await read_body(receive)
    rbac, principal, route = rbac_of(scope), principal_of(scope), scope["path"]
    assert rbac is not None
    admission = USER.admit(rbac, principal, route)  # a denial raises; RBACMiddleware answers it
    claude = admission.async_client()
    if route == "/chat":
        message = await claude.messages.create(**message_args(body))
        payload = json.dumps(answer(message)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})
        return
    stream = await claude.messages.create(**message_args(body), stream=True)
    try:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        async for event in stream:
            if (chunk := sse(event)) is not None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        with anyio.CancelScope(shield=True):  # a client that hung up cancelled us: still close Claude's stream
            await stream.close()


async def read_body(receive: Receive) -> Any:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return json.loads(b"".join(chunks))


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class StarletteHarness:
    """Drives an ASGI app with Starlette's TestClient: one event loop for every request, lifespan included."""

    def __init__(
        self,
        framework: str,
        app: Any,
        rbac: RBAC,
        routes: Mapping[str, str],
        framework_spans: frozenset[str] = frozenset(),
    ) -> None:
        self.framework = framework
        self.routes = routes
        self.framework_spans = framework_spans
        self.rbac = rbac
        self.client = TestClient(app)
        self.client.__enter__()

    def post(self, path: str, who: str | None, body: Mapping[str, Any]) -> Reply:
        response = self.client.post(path, json=dict(body), headers=bearer(who))
        return Reply(response.status_code, response.content, dict(response.headers))

    def stream_first_chunk(self, path: str, who: str | None, body: Mapping[str, Any]) -> Reply:
        with self.client.stream("POST", path, json=dict(body), headers=bearer(who)) as response:
            first = next(response.iter_bytes(), b"")
        # Leaving the block before the body ended cancels the app: the client hung up.
        return Reply(response.status_code, first, dict(response.headers))

    def close(self) -> None:
        try:
            assert self.client.portal is not None
            self.client.portal.call(self.rbac.aclose)  # the pools belong to the client's event loop
        finally:
            self.client.__exit__(None, None, None)


def build(options: Mapping[str, Any]) -> StarletteHarness:
    rbac = RBAC(**options)
    guarded = RBACMiddleware(
        chat_app,
        rbac=rbac,
        principal_loader=lambda scope: principal_for(dict(scope["headers"]).get(b"authorization", b"").decode()),
    )
    return StarletteHarness("asgi", ASGIServerSpans(guarded), rbac, ROUTES)
