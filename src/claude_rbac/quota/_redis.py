"""One Redis round trip per governed call: every bucket hit of the call in one pipeline.

Hitting RPM, TPM and budget buckets one after another through the ``limits`` strategies costs one
round trip each. Each of those hits is one of ``limits``' own atomic Lua scripts, so this module
sends the same scripts, with the same keys and arguments, in one non-transactional pipeline: the
server runs each atomically, and the call pays one round trip. (Scripts are called by SHA without
redis-py's per-pipeline ``SCRIPT EXISTS`` check; a ``NOSCRIPT`` reply after a server restart loads
them and retries once.)

It applies to the single-node and sentinel storages (sync, and async through redis-py); a cluster
spreads buckets over slots, so it keeps the strategies' one call per bucket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from ._buckets import Bucket

__all__ = ["AsyncRedisRoundTrip", "RedisRoundTrip"]

_SCRIPTS = {"moving": "lua_acquire_moving_window", "sliding": "lua_acquire_sliding_window", "fixed": "lua_incr_expire"}


class _Commands:
    """How to express a bucket hit as one of limits' scripts: (script, keys, args) and how to read its reply."""

    def __init__(self, scripts: Any, prefixed: Callable[[str], str], window_keys: Any) -> None:
        self.scripts = scripts
        self.prefixed = prefixed
        self.window_keys = window_keys

    def command(self, bucket: Bucket, cost: int, now: float) -> tuple[Any, list[str], list[Any]]:
        key = bucket.item.key_for(*bucket.identifiers)
        expiry = bucket.item.get_expiry()
        script = getattr(self.scripts, _SCRIPTS[bucket.strategy])
        if bucket.strategy == "moving":
            return script, [self.prefixed(key)], [now, bucket.item.amount, expiry, cost]
        if bucket.strategy == "sliding":
            previous = self.prefixed(self.window_keys._previous_window_key(key))
            current = self.prefixed(self.window_keys._current_window_key(key))
            return script, [previous, current], [bucket.item.amount, expiry, cost]
        return script, [self.prefixed(key)], [expiry, cost]

    @staticmethod
    def admitted(bucket: Bucket, reply: Any) -> bool:
        if bucket.strategy == "fixed":
            return int(reply) <= bucket.item.amount
        return bool(reply)


def _is_noscript(replies: Sequence[Any]) -> bool:
    return any(isinstance(reply, NoScriptError) for reply in replies)


def _raise_errors(replies: Sequence[Any]) -> None:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


class RedisRoundTrip:
    """Sync: hit (or give back) a call's buckets in one pipeline."""

    def __init__(self, storage: Any) -> None:
        self._storage = storage
        self._commands = _Commands(storage, storage.prefixed_key, storage)

    @classmethod
    def for_storage(cls, storage: Any) -> RedisRoundTrip | None:
        if type(storage).__name__ not in ("RedisStorage", "RedisSentinelStorage"):
            return None
        if not all(hasattr(storage, name) for name in (*_SCRIPTS.values(), "prefixed_key", "get_connection")):
            return None
        return cls(storage)

    def run(self, hits: Sequence[tuple[Bucket, int]]) -> list[bool]:
        """Hit each (bucket, cost) in one round trip; True where the bucket admitted it."""
        now = time.time()
        commands = [self._commands.command(bucket, cost, now) for bucket, cost in hits]
        replies = self._execute(commands)
        if _is_noscript(replies):
            connection = self._storage.get_connection()
            for script, _, _ in commands:
                script.sha = connection.script_load(script.script)
            replies = self._execute(commands)
        _raise_errors(replies)
        return [self._commands.admitted(bucket, reply) for (bucket, _), reply in zip(hits, replies, strict=True)]

    def _execute(self, commands: Sequence[tuple[Any, list[str], list[Any]]]) -> list[Any]:
        pipe = self._storage.get_connection().pipeline(transaction=False)
        for script, keys, args in commands:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        try:
            return list(pipe.execute(raise_on_error=False))
        except ResponseError as exc:  # pragma: no cover - raise_on_error=False returns errors in place
            return [exc]


class AsyncRedisRoundTrip:
    """Async (limits.aio with redis-py): the same, awaiting one pipeline."""

    def __init__(self, storage: Any) -> None:
        self._bridge = storage.bridge
        self._commands = _Commands(self._bridge, self._bridge.prefixed_key, storage)

    @classmethod
    def for_storage(cls, storage: Any) -> AsyncRedisRoundTrip | None:
        bridge = getattr(storage, "bridge", None)
        if type(storage).__name__ not in ("RedisStorage", "RedisSentinelStorage") or bridge is None:
            return None
        if type(bridge).__name__ != "RedispyBridge":
            return None
        return cls(storage)

    async def run(self, hits: Sequence[tuple[Bucket, int]]) -> list[bool]:
        now = time.time()
        commands = [self._commands.command(bucket, cost, now) for bucket, cost in hits]
        replies = await self._execute(commands)
        if _is_noscript(replies):
            connection = self._bridge.get_connection()
            for script, _, _ in commands:
                script.sha = await connection.script_load(script.script)
            replies = await self._execute(commands)
        _raise_errors(replies)
        return [self._commands.admitted(bucket, reply) for (bucket, _), reply in zip(hits, replies, strict=True)]

    async def _execute(self, commands: Sequence[tuple[Any, list[str], list[Any]]]) -> list[Any]:
        pipe = self._bridge.get_connection().pipeline(transaction=False)
        for script, keys, args in commands:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))
