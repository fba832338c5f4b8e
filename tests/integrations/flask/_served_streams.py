"""The Flask app the streaming-denial tests serve under gunicorn: ``tests.integrations.flask._served_streams:app()``.

Who is signed in comes from a bearer token looked up in a server-side table; Claude is
``ANTHROPIC_BASE_URL`` (the test's FakeClaude).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

from flask import Flask, Response, request, stream_with_context

from claude_rbac import RBAC, Policy, Principal
from claude_rbac.integrations.flask import ClaudeRBAC, current_claude, requires_role

TOKENS = {"t-uma": Principal("uma", "user")}


def token_principal() -> Principal | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return TOKENS.get(token) if scheme.lower() == "bearer" else None


def relay(stream: object) -> Iterator[str]:
    with stream:  # type: ignore[attr-defined]
        for event in stream:  # type: ignore[attr-defined]
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                yield f"data: {json.dumps({'text': event.delta.text})}\n\n"
    yield "event: done\ndata: {}\n\n"


def app(rbac: RBAC | None = None) -> Flask:
    flask_app = Flask(__name__)
    rbac = rbac or RBAC(Policy.default(), api_key="sk-ant-api03-served-0000", base_url=os.environ["ANTHROPIC_BASE_URL"])
    ClaudeRBAC(flask_app, rbac=rbac, principal_loader=token_principal)

    @flask_app.get("/lazy")
    @requires_role("user")
    def lazy() -> Response:
        """The stream is opened inside the generator: after the 200 and its headers are on the wire."""

        def body() -> Iterator[str]:
            yield ": connected\n\n"
            stream = current_claude().messages.create(
                model=request.args["model"], max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=True
            )
            yield from relay(stream)

        return Response(stream_with_context(body()), mimetype="text/event-stream")

    @flask_app.get("/eager")
    @requires_role("user")
    def eager() -> Response:
        """The stream is opened in the view: a refusal is still an HTTP error."""
        stream = current_claude().messages.create(
            model=request.args["model"], max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        return Response(stream_with_context(relay(stream)), mimetype="text/event-stream")

    @flask_app.get("/api/me")
    def me() -> dict[str, str]:
        return {"ok": "yes"}

    return flask_app
