"""Reading token usage from what Claude sent back, without changing what the app receives.

A JSON response's usage is on the parsed message. A stream's is in its ``message_start`` event
(input) and its final ``message_delta`` (output); :class:`UsageStream` watches the bytes go past
on their way to the SDK's own parser, and reports once, when the body ends, fails or is closed early.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2

from ..policy.prices import BillableUsage

__all__ = ["AsyncUsageStream", "SseUsage", "Usage", "UsageStream", "no_usage", "parsed_usage", "usage_of"]

_WATCHED = (b'"message_start"', b'"message_delta"')
_MAX_EVENT = 1 << 20


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    complete: bool = True
    """False when a stream ended before its final ``message_delta``: the output count is unknown."""
    billable: BillableUsage | None = None
    """Every billed figure of the usage (TTL split, server tools, tier, speed, geo), to price it exactly."""
    model: str | None = None
    """The model that answered (a fallback may answer for the requested one)."""
    advisors: tuple[tuple[str, BillableUsage], ...] = ()
    """Each advisor consultation's usage (``usage.iterations``), billed at its own model's rates."""
    malformed: bool = False
    """The usage could not be read as billed figures: the call keeps its dollar reservation."""

    @property
    def counted(self) -> int:
        """Tokens as Anthropic's rate limits count them: input, cache writes and output; cache reads are free."""
        return self.input_tokens + self.cache_creation_input_tokens + self.output_tokens

    def by_type(self) -> dict[str, int]:
        return {
            "input": self.input_tokens,
            "output": self.output_tokens,
            "cache_creation": self.cache_creation_input_tokens,
            "cache_read": self.cache_read_input_tokens,
        }

    def update(self, data: object) -> None:
        if not isinstance(data, Mapping):
            return
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ):
            value = data.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, name, value)


def _get(data: object, name: str) -> Any:
    return data.get(name) if isinstance(data, Mapping) else getattr(data, name, None)


def _advisors(raw: object) -> tuple[tuple[str, BillableUsage], ...]:
    found = []
    for iteration in _get(raw, "iterations") or ():
        model = _get(iteration, "model")
        if _get(iteration, "type") == "advisor_message" and isinstance(model, str):
            found.append((model, BillableUsage.from_api(iteration)))
    return tuple(found)


def read_billable(usage: Usage, raw: object, model: object) -> None:
    """Fill ``usage``'s billed figures from a raw ``usage`` (a model or a dict)."""
    usage.model = model if isinstance(model, str) else usage.model
    try:
        usage.billable = BillableUsage.from_api(raw)
        usage.advisors = _advisors(raw)
    except (ValueError, TypeError):
        usage.malformed = True


def usage_of(data: object, *, billed: bool = True) -> Usage | None:
    """The usage of a parsed message (a model or a dict), or ``None`` when it has none.

    ``billed=False`` leaves out the billed figures (``billable``, ``advisors``): only a call that is priced
    reads them, and building them is most of what reading the usage costs."""
    raw = data.get("usage") if isinstance(data, Mapping) else getattr(data, "usage", None)
    if raw is None:
        return None
    original = raw
    if not isinstance(raw, Mapping):
        raw = {
            name: getattr(raw, name, None)
            for name in (
                "input_tokens",
                "output_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
            )
        }
    usage = Usage()
    usage.update(raw)
    if billed:
        read_billable(usage, original, _get(data, "model"))
    else:
        model = _get(data, "model")
        usage.model = model if isinstance(model, str) else None
    return usage


class SseUsage:
    """An incremental SSE scanner that keeps the usage of ``message_start`` and ``message_delta`` events."""

    def __init__(self) -> None:
        self.usage = Usage(complete=False)
        self._buffer = b""

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk.replace(b"\r\n", b"\n") if b"\r" in chunk else chunk
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                if len(self._buffer) > _MAX_EVENT:
                    self._buffer = b""
                return
            event, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            if any(marker in event for marker in _WATCHED):
                self._event(event)

    def _event(self, event: bytes) -> None:
        data = b"".join(line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:"))
        try:
            payload: Any = json.loads(data)
        except ValueError:
            return
        if not isinstance(payload, Mapping):
            return
        usage = self.usage
        if payload.get("type") == "message_start":
            message = payload.get("message")
            if isinstance(message, Mapping):
                usage.update(message.get("usage"))
                read_billable(usage, message.get("usage") or {}, message.get("model"))
        elif payload.get("type") == "message_delta":
            delta = payload.get("usage")
            usage.update(delta)
            usage.complete = True
            if usage.billable is not None and delta is not None:
                try:  # the delta's totals are cumulative: they replace the start's
                    usage.billable = usage.billable.updated(delta)
                    usage.advisors = _advisors(delta) or usage.advisors
                except (ValueError, TypeError):
                    usage.malformed = True


class _Once:
    def __init__(self) -> None:
        self.done = False

    def first(self) -> bool:
        if self.done:
            return False
        self.done = True
        return True


class UsageStream(httpx2.SyncByteStream):
    """Passes a streamed body through untouched and calls ``on_end(usage)`` once when it ends."""

    def __init__(self, body: httpx2.SyncByteStream, on_end: Callable[[Usage], None]) -> None:
        self._body = body
        self._on_end = on_end
        self._scanner = SseUsage()
        self._once = _Once()

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._body:
                self._scanner.feed(chunk)
                yield chunk
        finally:
            self._end()

    def close(self) -> None:
        try:
            self._body.close()
        finally:
            self._end()

    def _end(self) -> None:
        if self._once.first():
            self._on_end(self._scanner.usage)


class AsyncUsageStream(httpx2.AsyncByteStream):
    """The async twin of :class:`UsageStream`; ``on_end`` is awaited."""

    def __init__(self, body: httpx2.AsyncByteStream, on_end: Callable[[Usage], Awaitable[None]]) -> None:
        self._body = body
        self._on_end = on_end
        self._scanner = SseUsage()
        self._once = _Once()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._body:
                self._scanner.feed(chunk)
                yield chunk
        finally:
            await self._end()

    async def aclose(self) -> None:
        try:
            await self._body.aclose()
        finally:
            await self._end()

    async def _end(self) -> None:
        if self._once.first():
            await self._on_end(self._scanner.usage)


def parsed_usage(data: object, *, billed: bool = True) -> Usage:
    """The usage of a parsed JSON answer; an answer without one is incomplete (it keeps its reservations)."""
    return usage_of(data, billed=billed) or Usage(complete=False)


def no_usage() -> Usage:
    """The usage of an attempt that failed before an answer: nothing used, nothing billed."""
    return Usage(complete=True, billable=BillableUsage())
