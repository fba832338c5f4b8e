"""``EVALSHA`` of the quota's script on a connection kept between calls, the command packed by us.

redis-py's command path (``client.evalsha``) spends about 40 µs of CPU per call on this machine around a
round trip whose own cost is about 20 µs: taking a connection from the pool (a lock, a socket poll, pool
metrics), retry and observability wrappers, and packing the command. The admission script is sent once per
governed call, so :class:`ScriptCaller` keeps a few connections parked between calls, checks a parked one
for a closed or dirty socket (the same poll the pool makes) and sends the packed command on it.

What does not change: the connection is the pool's (its URI, credentials, TLS, timeouts and database);
errors are redis-py's (a timeout disconnects the connection and raises, a script error is its
``ResponseError``); there is no retry, as the storage's clients have none (a retried script could count a
call twice). A client the pool does not hand out plain connections for (a cluster) is not used this way.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Sequence
from typing import Any, Final

from .. import _forksafe as forksafe

__all__ = ["AsyncScriptCaller", "ScriptCaller", "pack"]

PARKED: Final = 4
"""Connections kept between calls, at most: more concurrent calls take theirs from the pool and give them back."""


def pack(parts: Sequence[str | int]) -> bytes:
    """A command in RESP: an array of bulk strings."""
    chunks = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else str(part).encode()
        chunks.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(chunks)


def _usable(client: Any) -> bool:
    """Whether ``client`` is a single-node or sentinel redis-py client with a pool of plain connections."""
    return getattr(client, "connection", None) is None and callable(
        getattr(getattr(client, "connection_pool", None), "get_connection", None)
    )


def _get_args(pool: Any) -> tuple[str, ...]:
    """redis-py before 5.3 requires a command name to hand out a connection; later ones warn that it is deprecated."""
    named = inspect.signature(pool.get_connection).parameters.get("command_name")
    return ("EVALSHA",) if named is not None and named.default is named.empty else ()


class ScriptCaller:
    """Sends packed commands to a redis-py client's server on parked pool connections (sync)."""

    usable = staticmethod(_usable)

    def __init__(self, client: Any) -> None:
        self._pool = client.connection_pool
        self._get_args = _get_args(self._pool)
        self._parked: list[Any] = []
        self._lock = threading.Lock()
        """Taken only around a fork (see ``_forksafe``): the list itself is changed by atomic pops and appends."""
        forksafe.register(self)

    def call(self, command: bytes) -> Any:
        """Send ``command`` and read its reply (a ``ResponseError`` reply is raised, as redis-py does)."""
        connection = self._take()
        try:
            connection.send_packed_command((command,), check_health=False)
            reply = connection.read_response()
        except BaseException:
            self._pool.release(connection)  # redis-py disconnected it: the pool reconnects it when next used
            raise
        self._park(connection)
        return reply

    def _take(self) -> Any:
        try:
            connection = self._parked.pop()
        except IndexError:
            return self._pool.get_connection(*self._get_args)  # connected and checked by the pool
        try:
            if connection.can_read():  # data left over, or the server closed it (restart, idle timeout)
                connection.disconnect()
        except Exception:
            connection.disconnect()
        return connection  # a disconnected one connects again on send

    def _park(self, connection: Any) -> None:
        if len(self._parked) < PARKED:
            self._parked.append(connection)
        else:
            self._pool.release(connection)

    def close(self) -> None:
        """Give the parked connections back to the pool."""
        while self._parked:
            try:
                self._pool.release(self._parked.pop())
            except IndexError:
                break

    def _after_fork_in_child(self) -> None:
        # The parent's sockets: never written to from here (the pool, on its side, resets after a fork too).
        self._parked = []


class AsyncScriptCaller:
    """The same for a ``redis.asyncio`` client, within one event loop (the quota keeps one per loop)."""

    usable = staticmethod(_usable)

    def __init__(self, client: Any) -> None:
        self._pool = client.connection_pool
        self._get_args = _get_args(self._pool)
        self._parked: list[Any] = []

    async def call(self, command: bytes) -> Any:
        connection = await self._take()
        try:
            await connection.send_packed_command((command,), check_health=False)
            reply = await connection.read_response()
        except BaseException:
            await self._pool.release(connection)
            raise
        if len(self._parked) < PARKED:
            self._parked.append(connection)
        else:
            await self._pool.release(connection)
        return reply

    async def _take(self) -> Any:
        if not self._parked:
            return await self._pool.get_connection(*self._get_args)
        connection = self._parked.pop()
        # redis-py 8 renamed the check (the old name warns); earlier versions have only the old one.
        can_read = getattr(connection, "can_read", None) or connection.can_read_destructive
        try:
            if await can_read():  # data left over, or closed by the server
                await connection.disconnect()
        except Exception:
            await connection.disconnect()
        return connection

    async def close(self) -> None:
        while self._parked:
            await self._pool.release(self._parked.pop())
