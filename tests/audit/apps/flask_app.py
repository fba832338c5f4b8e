"""The app in Flask: ``ClaudeRBAC``, ``@requires_role`` and ``current_claude()``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Flask, Response, request, stream_with_context

from claude_rbac import RBAC
from claude_rbac.integrations.flask import ClaudeRBAC, current_claude, requires_role

from ..server_spans import WSGIServerSpans
from .common import answer, message_args, principal_for, sse
from .wsgi_app import WerkzeugHarness

ROUTES = {"/chat": "/chat", "/stream": "/stream", "/achat": "/achat"}


def create_app(rbac: RBAC) -> Flask:
    app = Flask(__name__)
    ClaudeRBAC(app, rbac=rbac, principal_loader=lambda: principal_for(request.headers.get("authorization")))

    @app.post("/chat")
    @requires_role("user")
    def chat() -> dict[str, Any]:
        return answer(current_claude().messages.create(**message_args(request.get_json())))

    @app.post("/achat")
    @requires_role("user")
    async def async_chat() -> dict[str, Any]:
        # Flask runs an async view in an event loop of its own, in another thread: the context must follow.
        await asyncio.sleep(0)
        return answer(current_claude().messages.create(**message_args(request.get_json())))

    @app.post("/stream")
    @requires_role("user")
    def stream() -> Response:
        # Opened in the view, so that a refusal is still an HTTP error status.
        opened = current_claude().messages.create(**message_args(request.get_json()), stream=True)
        return Response(stream_with_context(relay(opened)), mimetype="text/event-stream")

    return app


def relay(stream: Any) -> Iterator[bytes]:
    with stream:
        for event in stream:
            if (chunk := sse(event)) is not None:
                yield chunk


def build(options: Mapping[str, Any]) -> WerkzeugHarness:
    rbac = RBAC(**options)
    app = create_app(rbac)
    app.wsgi_app = WSGIServerSpans(app.wsgi_app)  # type: ignore[method-assign]
    return WerkzeugHarness("flask", app, rbac, ROUTES)
