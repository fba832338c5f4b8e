"""One async client per event loop (a Redis client, an HTTP pool), closed inside its loop when that loop shuts down.

An asyncio connection belongs to the loop that opened it. Django's async views under WSGI (runserver,
gunicorn sync workers, the test client) run each request in an event loop of its own (``async_to_sync``),
so a client kept from the first request fails every later one with ``Event loop is closed``. Each running
loop therefore gets its own client (and pool), built on its first call there. It is dropped when the loop
shuts down: a small async generator, started in the loop, is finalised by ``loop.shutdown_asyncgens()``,
which ``asyncio.run`` and asgiref's ``async_to_sync`` call before closing the loop, and its ``finally``
closes the client while the loop can still run that. So the clients held are those of the loops alive
now; a loop closed without that step (a hand-rolled ``loop.close()``) is forgotten on the next new loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from . import _forksafe as forksafe

__all__ = ["PerLoop"]

log = logging.getLogger("claude_rbac")
T = TypeVar("T")


@dataclass(eq=False)
class Opened(Generic[T]):
    """What a loop's first call built: the client, how to close it, and how to check it before first use."""

    value: T
    close: Callable[[], Awaitable[object]]
    check: Callable[[], Awaitable[object]] | None = None


@dataclass(eq=False)
class _Entry(Generic[T]):
    opened: Opened[T]
    ready: asyncio.Future[None] | None = None
    guard: AsyncGenerator[None, None] | None = None
    dead: bool = field(default=False)


class PerLoop(Generic[T]):
    """``await get()`` returns the running loop's client, opening it there on first use."""

    def __init__(self, open_client: Callable[[], Opened[T]]) -> None:
        self._open = open_client
        self._lock = threading.Lock()
        self._entries: dict[asyncio.AbstractEventLoop, _Entry[T]] = {}
        forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        self._entries = {}  # the parent's loops and connections are not the child's

    def __len__(self) -> int:
        return len(self._entries)

    def get_now(self) -> T:
        """The running loop's client, opened now if it has none: for sync code called inside a loop.

        The same as :meth:`get` for clients that need no async check before their first use.
        """
        loop = asyncio.get_running_loop()
        entry = self._entries.get(loop)
        if entry is None:
            with self._lock:
                for gone in [other for other in self._entries if other.is_closed()]:
                    self._forget(gone)
                entry = _Entry(self._open())
                self._entries[loop] = entry
            entry.guard = self._guard(loop, entry)
            step = entry.guard.__anext__()  # registers the guard with this loop: shutdown_asyncgens() finalises it
            try:
                step.send(None)
            except StopIteration:
                pass
            else:  # pragma: no cover - the guard's first step never awaits
                step.close()
        return entry.opened.value

    async def get(self) -> T:
        loop = asyncio.get_running_loop()
        entry = self._entries.get(loop)
        if entry is None:
            entry = await self._start(loop)
        if entry.ready is not None and not entry.ready.done():
            await asyncio.shield(entry.ready)
        return entry.opened.value

    async def _start(self, loop: asyncio.AbstractEventLoop) -> _Entry[T]:
        with self._lock:
            for gone in [other for other in self._entries if other.is_closed()]:
                self._forget(gone)
            entry = _Entry(self._open())
            self._entries[loop] = entry
        entry.guard = self._guard(loop, entry)
        await entry.guard.__anext__()  # started in this loop: shutdown_asyncgens() will finalise it
        check = entry.opened.check
        if check is not None:  # e.g. a cluster discovers its nodes: the loop's other first calls wait for it
            entry.ready = loop.create_future()
            try:
                await check()
            except BaseException as exc:
                entry.ready.set_exception(exc)
                entry.ready.exception()  # retrieved: waiters re-raise it, an unawaited one is not an error
                await self._close(loop, entry)
                raise
            entry.ready.set_result(None)
        return entry

    async def _guard(self, loop: asyncio.AbstractEventLoop, entry: _Entry[T]) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if not entry.dead:
                await self._close_entry(loop, entry)

    async def _close_entry(self, loop: asyncio.AbstractEventLoop, entry: _Entry[T]) -> None:
        with self._lock:
            if self._entries.get(loop) is entry:
                del self._entries[loop]
        entry.dead = True
        try:
            await entry.opened.close()
        except Exception as exc:  # closing is best effort: the loop is ending
            log.debug("claude_rbac: closing a per-loop async client failed (%s)", type(exc).__name__)

    async def _close(self, loop: asyncio.AbstractEventLoop, entry: _Entry[T]) -> None:
        guard = entry.guard
        if guard is not None:
            await guard.aclose()  # runs the guard's finally, which closes the entry
        else:
            await self._close_entry(loop, entry)

    async def aclose(self) -> None:
        """Close the running loop's client (call it before the loop ends); forget those of closed loops."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._entries.get(loop)
            for gone in [other for other in self._entries if other.is_closed()]:
                self._forget(gone)
        if entry is not None:
            await self._close(loop, entry)

    def _forget(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drop the entry of a loop closed without ``shutdown_asyncgens()`` (call with the lock held)."""
        entry = self._entries.pop(loop)
        entry.dead = True
        if entry.guard is None:
            return
        closing = entry.guard.aclose()
        try:
            closing.send(None)  # the guard's finally sees ``dead`` and awaits nothing
        except StopIteration:
            pass
        else:  # pragma: no cover - the guard never awaits once dead
            closing.close()
