"""Requests per minute, tokens per minute and token budgets, on the ``limits`` package.

Nothing here writes a storage itself: buckets are ``limits`` items hit through its strategies (or, on a
single Redis node, the same scripts sent in one pipeline). A storage failure surfaces as
:class:`StorageFailure`; the caller decides (fail closed by default).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from limits.aio import strategies as aio_strategies
from limits.aio.storage import Storage as AsyncStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from ..errors import RateLimited, message_for
from ._buckets import Bucket, Reservation, Strategy, plan_buckets
from ._settler import Settler
from ._storage import (
    async_storage_uri,
    build_storage,
    connections_of,
    is_redis,
    options_for,
    scheme_of,
    with_blocking_pool,
)

if TYPE_CHECKING:
    from ._redis import AsyncRedisRoundTrip, RedisRoundTrip

__all__ = ["Quota", "StorageFailure"]


class StorageFailure(Exception):
    """The limits storage failed or timed out. Carries no detail that could leak a URI or password."""


class Quota:
    """The counters behind one :class:`~claude_rbac.rbac.RBAC`: a sync storage, and an async one for async clients.

    With ``memory://`` both clients share the same in-process counters (memory never blocks the event
    loop); with Redis the async client uses ``limits.aio`` on its own connection pool.
    """

    def __init__(
        self,
        storage: str = "memory://",
        *,
        key_prefix: str = "claude_rbac",
        storage_options: dict[str, Any] | None = None,
        async_storage: str | None = None,
    ) -> None:
        self.uri = storage
        self.key_prefix = key_prefix
        self.is_memory = scheme_of(storage) == "memory"
        options = options_for(storage, storage_options)
        self.storage = build_storage(storage, options)
        self._strategies: dict[Strategy, RateLimiter] = {
            "moving": MovingWindowRateLimiter(self.storage),
            "sliding": SlidingWindowCounterRateLimiter(self.storage),
            "fixed": FixedWindowRateLimiter(self.storage),
        }
        self._async_uri = None if self.is_memory else (async_storage or async_storage_uri(storage))
        self._async_options = options_for(self._async_uri or "", storage_options)
        if self._async_uri and is_redis(self._async_uri):
            self._async_options.setdefault("implementation", "redispy")
        self._async_strategies: dict[Strategy, aio_strategies.RateLimiter] | None = None
        self._async_storage: Any = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._async_round_trip: AsyncRedisRoundTrip | None = None
        self._round_trip: RedisRoundTrip | None = None
        if is_redis(storage):
            from ._redis import RedisRoundTrip  # redis is imported only when a Redis URI is used

            self._round_trip = RedisRoundTrip.for_storage(self.storage)
        self._settler = Settler(lambda hits: self._hit_all(hits, stop_early=False))

    # -- planning ----------------------------------------------------------------------------------

    def buckets(self, **kwargs: Any) -> tuple[Bucket, ...]:
        """The buckets one call must fit in (see :func:`~._buckets.plan_buckets`), under this quota's key prefix."""
        return plan_buckets(self.key_prefix, **kwargs)

    # -- hitting ------------------------------------------------------------------------------------

    def _hit_all(self, hits: Sequence[tuple[Bucket, int]], *, stop_early: bool = True) -> list[bool | None]:
        """Hit each (bucket, cost): one pipeline on Redis, else one strategy call each.

        ``None`` marks a hit not attempted because an earlier one was refused (sequential path only).
        """
        try:
            if self._round_trip is not None:
                return list(self._round_trip.run(hits))
            results: list[bool | None] = []
            for bucket, cost in hits:
                if stop_early and False in results:
                    results.append(None)
                    continue
                results.append(self._strategies[bucket.strategy].hit(bucket.item, *bucket.identifiers, cost=cost))
            return results
        except Exception as exc:
            raise StorageFailure(type(exc).__name__) from None

    async def _ahit_all(self, hits: Sequence[tuple[Bucket, int]], *, stop_early: bool = True) -> list[bool | None]:
        try:
            strategies = await self._aio()
            if self._async_round_trip is not None:
                return list(await self._async_round_trip.run(hits))
            results: list[bool | None] = []
            for bucket, cost in hits:
                if stop_early and False in results:
                    results.append(None)
                    continue
                results.append(await strategies[bucket.strategy].hit(bucket.item, *bucket.identifiers, cost=cost))
            return results
        except Exception as exc:
            raise StorageFailure(type(exc).__name__) from None

    @staticmethod
    def _undo(buckets: Sequence[Bucket], results: Sequence[bool | None]) -> list[tuple[Bucket, int]]:
        """What to give back after a refusal: admitted token buckets, and fixed windows (they count even a refusal).

        An admitted RPM hit stays: a request refused for its tokens was still a request.
        """
        return [
            (bucket, -bucket.cost)
            for bucket, admitted in zip(buckets, results, strict=True)
            if bucket.kind != "rpm" and (admitted or (admitted is False and bucket.strategy == "fixed"))
        ]

    # -- sync --------------------------------------------------------------------------------------

    def acquire(self, buckets: Sequence[Bucket]) -> Reservation:
        """Hit every bucket in one round trip; if one is full, give back what was taken and raise ``RateLimited``."""
        results = self._hit_all([(bucket, bucket.cost) for bucket in buckets])
        refused = next((bucket for bucket, ok in zip(buckets, results, strict=True) if ok is False), None)
        if refused is None:
            return Reservation(tuple(buckets), max((b.cost for b in buckets if b.kind != "rpm"), default=0))
        if undo := self._undo(buckets, results):
            self._hit_all(undo, stop_early=False)
        try:
            retry_after = self._retry_after(refused)
        except Exception:
            retry_after = 60.0
        raise self._limited(refused, retry_after)

    def settle(self, reservation: Reservation, used: int) -> None:
        """Give back what the call reserved but did not use (or charge what it used beyond).

        On Redis this is queued to a background thread that batches settlements into pipelines, so
        the call itself pays one round trip; :meth:`flush` waits for the queue.
        """
        delta = reservation.reserved - used
        hits = [(bucket, -delta) for bucket in reservation.token_buckets]
        if not delta or not hits:
            return
        if self.is_memory:
            self._hit_all(hits, stop_early=False)
        else:
            self._settler.submit(hits)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until queued settlements reached the storage; False if they did not within ``timeout``."""
        return self._settler.flush(timeout)

    def _retry_after(self, bucket: Bucket) -> float:
        if bucket.resets_at is not None:
            return bucket.resets_at - time.time()
        stats = self._strategies[bucket.strategy].get_window_stats(bucket.item, *bucket.identifiers)
        return stats.reset_time - time.time()

    def remaining(self, buckets: Sequence[Bucket]) -> list[tuple[Bucket, int, float]]:
        """(bucket, remaining, reset time) for each bucket, for rate-limit headers and the demo."""
        out = []
        try:
            for bucket in buckets:
                stats = self._strategies[bucket.strategy].get_window_stats(bucket.item, *bucket.identifiers)
                out.append((bucket, stats.remaining, bucket.resets_at or stats.reset_time))
        except Exception as exc:
            raise StorageFailure(type(exc).__name__) from None
        return out

    # -- async -------------------------------------------------------------------------------------

    async def _aio(self) -> dict[Strategy, aio_strategies.RateLimiter]:
        """The async strategies, built on first use and connected before the first hit.

        Connecting first matters for a cluster: redis-py's asyncio cluster client discovers its nodes on
        the first command, and a burst of first commands races that discovery into ConnectionErrors.
        """
        if self._async_strategies is not None:
            return self._async_strategies
        async with self._async_lock():
            if self._async_strategies is None:
                assert self._async_uri is not None
                from ._redis import AsyncRedisRoundTrip

                options = with_blocking_pool(self._async_uri, self._async_options)
                storage = cast(AsyncStorage, build_storage(self._async_uri, options))
                await storage.check()
                self._async_storage = storage
                self._async_round_trip = AsyncRedisRoundTrip.for_storage(storage)
                self._async_strategies = {
                    "moving": aio_strategies.MovingWindowRateLimiter(storage),
                    "sliding": aio_strategies.SlidingWindowCounterRateLimiter(storage),
                    "fixed": aio_strategies.FixedWindowRateLimiter(storage),
                }
        return self._async_strategies

    def _async_lock(self) -> asyncio.Lock:
        # One lock per event loop: an asyncio.Lock must not be shared across loops.
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:
            self._lock_loop, self._lock = loop, asyncio.Lock()
        return self._lock

    async def aacquire(self, buckets: Sequence[Bucket]) -> Reservation:
        """:meth:`acquire` for async clients: never blocks the event loop (memory is in-process; Redis is aio)."""
        if self.is_memory:
            return self.acquire(buckets)
        results = await self._ahit_all([(bucket, bucket.cost) for bucket in buckets])
        refused = next((bucket for bucket, ok in zip(buckets, results, strict=True) if ok is False), None)
        if refused is None:
            return Reservation(tuple(buckets), max((b.cost for b in buckets if b.kind != "rpm"), default=0))
        if undo := self._undo(buckets, results):
            await self._ahit_all(undo, stop_early=False)
        try:
            retry_after = await self._aretry_after(refused)
        except Exception:
            retry_after = 60.0
        raise self._limited(refused, retry_after)

    async def asettle(self, reservation: Reservation, used: int) -> None:
        """Settle without waiting: memory inline, Redis through the background settler."""
        self.settle(reservation, used)

    async def _aretry_after(self, bucket: Bucket) -> float:
        if bucket.resets_at is not None:
            return bucket.resets_at - time.time()
        stats = await (await self._aio())[bucket.strategy].get_window_stats(bucket.item, *bucket.identifiers)
        return stats.reset_time - time.time()

    async def aremaining(self, buckets: Sequence[Bucket]) -> list[tuple[Bucket, int, float]]:
        if self.is_memory:
            return self.remaining(buckets)
        out = []
        try:
            for bucket in buckets:
                stats = await (await self._aio())[bucket.strategy].get_window_stats(bucket.item, *bucket.identifiers)
                out.append((bucket, stats.remaining, bucket.resets_at or stats.reset_time))
        except Exception as exc:
            raise StorageFailure(type(exc).__name__) from None
        return out

    # -- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Settle what is queued, then disconnect the sync storage's connections (Redis pools)."""
        self._settler.flush(2.0)
        for connection in connections_of(self.storage):
            connection.close()

    async def aclose(self) -> None:
        """Disconnect the async storage's connections; call it before the event loop ends."""
        storage, self._async_storage, self._async_strategies = self._async_storage, None, None
        self._async_round_trip = None
        bridge = getattr(storage, "bridge", None)
        for connection in connections_of(bridge) if bridge is not None else ():
            await connection.aclose()
            pool = getattr(connection, "connection_pool", None)
            if pool is not None:  # a pool we passed in is not closed with its client
                await pool.disconnect()

    # -- errors ------------------------------------------------------------------------------------

    @staticmethod
    def _limited(bucket: Bucket, retry_after: float) -> RateLimited:
        if bucket.kind == "budget":
            return RateLimited(retry_after=retry_after, reason="token_budget_exceeded")
        variant = "" if bucket.kind == "rpm" else "tokens"
        return RateLimited(message_for("rate_limited", variant), retry_after=retry_after)
