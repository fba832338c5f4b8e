"""Requests per minute, tokens per minute and token budgets, on the ``limits`` package.

Which strategy, and why:

* **RPM: moving window.** Exact: never more than N calls in any 60 seconds, on memory and on Redis
  (an atomic Lua script there), so 100 threads against rpm=5 let exactly 5 through.
* **TPM: sliding window counter.** A moving window stores one entry per unit, which is fine for 60
  requests and absurd for 100,000 tokens; the sliding counter keeps two integers per bucket.
* **Budgets: fixed windows on the UTC calendar** (the day, the month), so a budget resets at midnight
  and a settlement always lands in the window it was charged to.

Nothing here writes a storage: buckets are ``limits`` items hit through its strategies. A storage
failure surfaces as :class:`StorageFailure`; the caller decides (fail closed by default).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast
from urllib.parse import quote

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute
from limits.aio import strategies as aio_strategies
from limits.aio.storage import Storage as AsyncStorage
from limits.storage import storage_from_string
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from .errors import RateLimited
from .memory_storage import LazyMemoryStorage
from .settler import Settler

__all__ = ["Bucket", "Quota", "Reservation", "StorageFailure", "async_storage_uri"]

Strategy = Literal["moving", "sliding", "fixed"]
BucketKind = Literal["rpm", "tpm", "budget"]
REDIS_TIMEOUT: Final = 0.25
"""Seconds a Redis call may take before the storage counts as down (connect and read)."""
_REDIS_SCHEMES: Final = ("redis", "rediss", "redis+unix", "valkey", "valkeys", "valkey+unix")


class StorageFailure(Exception):
    """The limits storage failed or timed out. Carries no detail that could leak a URI or password."""


def _escape(value: str) -> str:
    # limits joins identifiers with "/"; escape so "a/b" + "c" never collides with "a" + "b/c".
    return quote(value, safe="")


def async_storage_uri(uri: str) -> str:
    """The ``limits.aio`` URI for a sync one: ``redis://`` becomes ``async+redis://``."""
    return uri if uri.startswith("async+") else f"async+{uri}"


def _scheme(uri: str) -> str:
    return uri.split("://", 1)[0].lower()


def _no_retries() -> Any:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


def _storage_options(uri: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """Bounded timeouts, and redis-py's own retries off: a retried Lua script could count a call twice,
    and ten retries with backoff would stretch the bounded timeout into seconds. Override either in
    ``storage_options``."""
    merged: dict[str, Any] = {"wrap_exceptions": True}
    scheme = _scheme(uri).removeprefix("async+")
    if scheme.startswith(("redis", "valkey")):
        merged["retry"] = _no_retries()
    if scheme in _REDIS_SCHEMES or scheme in ("redis+cluster", "valkey+cluster"):
        merged.update(socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
    elif scheme in ("redis+sentinel", "valkey+sentinel"):
        merged.update(socket_timeout=REDIS_TIMEOUT, sentinel_kwargs={"socket_timeout": REDIS_TIMEOUT})
    merged.update(options or {})
    return merged


@dataclass(frozen=True, slots=True)
class Bucket:
    """One limit one call must fit in: which counter, how much it allows, what the call costs."""

    kind: BucketKind
    strategy: Strategy
    item: RateLimitItem
    identifiers: tuple[str, ...]
    cost: int
    resets_at: float | None = None
    """For calendar budgets: when the window ends (epoch seconds)."""

    def with_cost(self, cost: int) -> Bucket:
        return Bucket(self.kind, self.strategy, self.item, self.identifiers, cost, self.resets_at)


@dataclass(slots=True)
class Reservation:
    """What one admitted call holds, so its token buckets can be settled against real usage."""

    buckets: tuple[Bucket, ...]
    reserved: int

    @property
    def token_buckets(self) -> tuple[Bucket, ...]:
        return tuple(bucket for bucket in self.buckets if bucket.kind != "rpm")


_ITEM_CACHE: dict[tuple[str, int], RateLimitItem] = {}


def _item(kind: str, amount: int) -> RateLimitItem:
    key = (kind, amount)
    item = _ITEM_CACHE.get(key)
    if item is None:
        if kind == "day":
            item = RateLimitItemPerDay(amount)
        elif kind == "month":
            item = RateLimitItemPerDay(amount, 32)
        else:
            item = RateLimitItemPerMinute(amount)
        _ITEM_CACHE[key] = item
    return item


def _calendar(period: Literal["day", "month"], now: float) -> tuple[str, float]:
    """The UTC window id and when it ends."""
    today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
    if period == "day":
        end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
        return today.isoformat(), end.timestamp()
    first_next = (today.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    end = dt.datetime.combine(first_next, dt.time(), dt.timezone.utc)
    return today.strftime("%Y-%m"), end.timestamp()


ASYNC_MAX_CONNECTIONS: Final = 64
ASYNC_POOL_WAIT: Final = 2.0
"""Seconds an async call may wait for a free pooled connection (queueing under a burst, not an outage)."""


def _with_blocking_pool(uri: str, options: dict[str, Any]) -> dict[str, Any]:
    """Give a single-node async Redis storage a *blocking* pool.

    redis-py's asyncio pool raises ``MaxConnectionsError`` the moment 100 connections are busy, so a
    burst of concurrent requests in one worker would fail closed although Redis is fine. A blocking
    pool makes the burst wait its turn (up to ``pool_timeout``) on at most ``max_connections`` sockets.
    """
    scheme = _scheme(uri).removeprefix("async+")
    if scheme not in ("redis", "rediss") or "connection_pool" in options:
        return options
    import redis.asyncio

    options = dict(options)
    max_connections = int(options.pop("max_connections", ASYNC_MAX_CONNECTIONS))
    wait = float(options.pop("pool_timeout", ASYNC_POOL_WAIT))
    connection = {k: options.pop(k) for k in list(options) if k.startswith("socket_") or k == "health_check_interval"}
    options["connection_pool"] = redis.asyncio.BlockingConnectionPool.from_url(
        uri.removeprefix("async+"), max_connections=max_connections, timeout=wait, **connection
    )
    return options


def _connections(storage: Any) -> list[Any]:
    """The client objects a limits Redis storage (or aio bridge) holds: the data one and any sentinels."""
    if not hasattr(storage, "get_connection"):
        return []
    found = [storage.get_connection()]
    sentinel = getattr(storage, "sentinel", None)
    found.extend(getattr(sentinel, "sentinels", ()) if sentinel is not None else ())
    return found


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
        self.is_memory = _scheme(storage) == "memory"
        options = _storage_options(storage, storage_options)
        # memory:// gets our threadless storage, built directly: limits' scheme registry stays untouched.
        self.storage = (
            LazyMemoryStorage(storage, **options) if self.is_memory else storage_from_string(storage, **options)
        )
        self._strategies: dict[Strategy, RateLimiter] = {
            "moving": MovingWindowRateLimiter(self.storage),
            "sliding": SlidingWindowCounterRateLimiter(self.storage),
            "fixed": FixedWindowRateLimiter(self.storage),
        }
        self._async_uri = None if self.is_memory else (async_storage or async_storage_uri(storage))
        self._async_options = _storage_options(self._async_uri or "", storage_options)
        if self._async_uri and _scheme(self._async_uri).removeprefix("async+").startswith(("redis", "valkey")):
            self._async_options.setdefault("implementation", "redispy")
        self._async_strategies: dict[Strategy, aio_strategies.RateLimiter] | None = None
        self._async_storage: Any = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._async_round_trip: AsyncRedisRoundTrip | None = None
        self._round_trip = RedisRoundTrip.for_storage(self.storage)
        self._settler = Settler(lambda hits: self._hit_all(hits, stop_early=False))

    # -- planning ----------------------------------------------------------------------------------

    def buckets(
        self,
        *,
        role: str,
        principal_id: str,
        rpm: int | None,
        scope_name: str = "",
        scope_rpm: int | None = None,
        tpm: int | None = None,
        budget_day: int | None = None,
        budget_month: int | None = None,
        pool_tpm: int | None = None,
        pool_budget_day: int | None = None,
        pool_budget_month: int | None = None,
        tokens: int = 0,
        now: float | None = None,
    ) -> tuple[Bucket, ...]:
        """The buckets one call must fit in, in the order they are hit."""
        prefix = _escape(self.key_prefix)
        who = (_escape(role), _escape(principal_id))
        plan: list[Bucket] = []
        if rpm is not None:
            plan.append(Bucket("rpm", "moving", _item("minute", rpm), (prefix, "rpm", *who), 1))
        if scope_rpm is not None:
            route_ids = (prefix, "rpm", *who, "route", _escape(scope_name))
            plan.append(Bucket("rpm", "moving", _item("minute", scope_rpm), route_ids, 1))
        if tokens <= 0:
            return tuple(plan)
        if tpm is not None:
            plan.append(Bucket("tpm", "sliding", _item("minute", tpm), (prefix, "tpm", *who), tokens))
        if pool_tpm is not None:
            plan.append(Bucket("tpm", "sliding", _item("minute", pool_tpm), (prefix, "pool-tpm", who[0]), tokens))
        clock = time.time() if now is None else now
        for period, amount, pool_amount in (
            ("day", budget_day, pool_budget_day),
            ("month", budget_month, pool_budget_month),
        ):
            if amount is None and pool_amount is None:
                continue
            window, ends = _calendar(period, clock)  # type: ignore[arg-type]
            if amount is not None:
                own = (prefix, "budget", period, window, *who)
                plan.append(Bucket("budget", "fixed", _item(period, amount), own, tokens, ends))
            if pool_amount is not None:
                pool = (prefix, "pool-budget", period, window, who[0])
                plan.append(Bucket("budget", "fixed", _item(period, pool_amount), pool, tokens, ends))
        return tuple(plan)

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
                options = _with_blocking_pool(self._async_uri, self._async_options)
                storage = cast(AsyncStorage, storage_from_string(self._async_uri, **options))
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
        for connection in _connections(self.storage):
            connection.close()

    async def aclose(self) -> None:
        """Disconnect the async storage's connections; call it before the event loop ends."""
        storage, self._async_storage, self._async_strategies = self._async_storage, None, None
        self._async_round_trip = None
        bridge = getattr(storage, "bridge", None)
        for connection in _connections(bridge) if bridge is not None else ():
            await connection.aclose()
            pool = getattr(connection, "connection_pool", None)
            if pool is not None:  # a pool we passed in is not closed with its client
                await pool.disconnect()

    # -- errors ------------------------------------------------------------------------------------

    @staticmethod
    def _limited(bucket: Bucket, retry_after: float) -> RateLimited:
        if bucket.kind == "budget":
            return RateLimited(
                "The token budget for this period is used up.",
                retry_after=retry_after,
                reason="token_budget_exceeded",
            )
        what = "requests" if bucket.kind == "rpm" else "tokens"
        return RateLimited(f"Too many {what} per minute; retry later.", retry_after=retry_after)


from .quota_redis import AsyncRedisRoundTrip, RedisRoundTrip  # noqa: E402  (they build on Bucket, above)
