"""The messages FakeClaude answers with, as one JSON body or as the SSE events of a stream."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from ._fake_usage import delta_usage, max_tokens, start_usage

__all__ = ["WORDS", "message_body", "stream_events"]

WORDS: Final = ("Hello", "from", "FakeClaude,", "a", "local", "stand-in", "for", "the", "Messages", "API.")
MAX_WORDS: Final = 10_000
"""The longest text written, whatever ``output_tokens`` says (a scripted usage may claim millions)."""


def _container(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The container a request reuses (``container``) or gets with a code execution tool, else ``None``."""
    asked = body.get("container")
    container_id = asked.get("id") if isinstance(asked, Mapping) else asked
    tools = body.get("tools")
    tools = tools if isinstance(tools, list) else []
    runs_code = any(isinstance(t, Mapping) and str(t.get("type", "")).startswith("code_execution_") for t in tools)
    if not container_id and not runs_code:
        return None
    expires = datetime.now(timezone.utc) + timedelta(days=30)
    return {
        "id": container_id or f"container_{uuid.uuid4().hex[:24]}",
        "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def message_body(body: Mapping[str, Any], usage: Mapping[str, Any]) -> dict[str, Any]:
    """A ``message`` answering ``body``: as many words as ``usage`` has output tokens."""
    out = int(usage.get("output_tokens", 0))
    message: dict[str, Any] = {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": [{"type": "text", "text": " ".join(WORDS[i % len(WORDS)] for i in range(min(out, MAX_WORDS)))}],
        "stop_reason": "max_tokens" if out >= max_tokens(body) else "end_turn",
        "stop_sequence": None,
        "usage": dict(usage),
    }
    container = _container(body)
    if container is not None:
        message["container"] = container
    if body.get("context_management") is not None:
        message["context_management"] = {"applied_edits": []}
    return message


def stream_events(message: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The SSE events of a streamed ``message``, in the documented order, its usage split as the API does.

    ``message_start`` carries the input side (and the cache breakdown, tier, geo and speed, which
    only it has); the final ``message_delta`` carries the cumulative output side.
    """
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": start_usage(usage)}
    yield "message_start", {"type": "message_start", "message": start}
    yield (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    yield "ping", {"type": "ping"}
    text = message["content"][0]["text"]
    for i, word in enumerate(text.split(" ") if text else []):
        yield (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": word if i == 0 else f" {word}"},
            },
        )
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": delta_usage(usage),
        },
    )
    yield "message_stop", {"type": "message_stop"}
