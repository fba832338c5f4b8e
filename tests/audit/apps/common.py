"""What every audited app shares: who the bearer tokens are, the request shape, and the harness protocol.

Each framework module builds the same tiny app, the way that framework's users write it:

* ``POST /chat``   guarded ``user``: ``{"prompt", "model"?, "max_tokens"?}`` -> one ``messages.create``;
* ``POST /stream`` guarded ``user``: the same, streamed back as server-sent events.

The prompt travels in the body, never the query string: HTTP instrumentations record ``url.query``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from claude_rbac import Principal

HAIKU, SONNET, OPUS = "claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-7"

TOKENS: Mapping[str, Principal] = {
    "t-uma": Principal("uma", "user"),
    "t-vera": Principal("vera", "viewer"),
    "t-paul": Principal("paul", "power"),
}
"""Bearer tokens the apps know, server-side: the token says who you are, the server says your role."""


def principal_for(authorization: str | None) -> Principal | None:
    scheme, _, token = (authorization or "").partition(" ")
    return TOKENS.get(token) if scheme.lower() == "bearer" else None


def bearer(who: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer t-{who}"} if who else {}


def message_args(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "model": body.get("model", HAIKU),
        "max_tokens": body.get("max_tokens", 100),
        "messages": [{"role": "user", "content": body["prompt"]}],
    }


def answer(message: Any) -> dict[str, Any]:
    return {"text": message.content[0].text, "model": message.model}


def sse(event: Any) -> bytes | None:
    """One text delta as an SSE ``data:`` line; ``None`` for the events the relay skips."""
    if event.type == "content_block_delta" and event.delta.type == "text_delta":
        return f"data: {json.dumps({'text': event.delta.text})}\n\n".encode()
    return None


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


class Harness(Protocol):
    """One framework's app, driven through that framework's own test client."""

    framework: str
    routes: Mapping[str, str]
    """Request path -> the ``claude_rbac.route`` the framework records for it (its route template)."""
    framework_spans: frozenset[str]
    """Span names the framework itself adds between the server span and ours (FastAPI's operation spans)."""

    def post(self, path: str, who: str | None, body: Mapping[str, Any]) -> Reply: ...

    def stream_first_chunk(self, path: str, who: str | None, body: Mapping[str, Any]) -> Reply:
        """Read the first chunk of the response body, then hang up (a browser tab closed mid-answer)."""
        ...

    def close(self) -> None: ...
