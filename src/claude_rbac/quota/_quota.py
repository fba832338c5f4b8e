"""Requests per minute, tokens per minute and budgets: one admission per call, settled from real usage after it.

What a call costs (see ``_buckets.py`` for the strategies, ``_engine.py`` for the rules):

* ``memory://``: one lock, no thread, no queue; a settlement is applied inline.
* Redis: **one round trip** per admission, one ``EVALSHA`` of our script that also carries the settlements
  queued in this process (``_settlements.py``: a give-back waits at most ``settle_within`` seconds, 1 by
  default). A call whose usage exceeded its reservation pays one more round trip, at once, to record the
  excess. A cluster: one call per hash tag (``_redis.py``). The async client holds one connection pool per
  running event loop (``_loops.py``).

A storage failure surfaces as :class:`StorageFailure`, whose message names the cause (scrubbed of URIs,
credentials and keys); the caller decides (fail closed by default).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from .._loops import Opened, PerLoop
from ..errors import RateLimited, message_for
from ..policy import dollars_of
from ._buckets import Bucket, Reservation, plan_buckets
from ._engine import Check, Settlement, Verdict, remaining, reservation_of, retry_after, settlements_for
from ._ledger import LedgerQueue, SpendRecorder
from ._local import MemoryBuckets
from ._settlements import MAX_AGE, SettlementQueue
from ._storage import (
    async_storage_uri,
    build_storage,
    connections_of,
    is_redis,
    options_for,
    scheme_of,
    with_blocking_pool,
)

__all__ = ["Quota", "StorageFailure", "Used"]

Clock = Callable[[], float]
Used = int | Mapping[str, int]
"""What a call used: tokens, or an amount per unit (a unit left out keeps its reservation)."""
Outcome = tuple[float, list[Check], Verdict]


class StorageFailure(Exception):
    """The storage failed or timed out. The message names the cause, never a URI, address, password or key."""

    @classmethod
    def of(cls, exc: BaseException) -> StorageFailure:
        detail = _scrub(str(exc))
        return cls(f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__)


_SCRUBS = (
    (re.compile(r"[a-z][a-z0-9+.-]*://\S*", re.IGNORECASE), "<uri>"),
    (re.compile(r"\S+:\S*@\S+"), "<credentials>"),
    (re.compile(r"\[?[\w.:-]+\]?:\d{1,5}\b"), "<address>"),
    (re.compile(r"\(\s*'[^']*'\s*,\s*\d+\s*\)"), "<address>"),  # asyncio's ('host', port)
    (re.compile(r"sk-ant-\S*"), "<api key>"),
    (re.compile(r"\S*\{[^}]*\}\S*"), "<key>"),
    (re.compile(r"(?i)\b(password|passwd|pwd|secret|token)\s*[=:]\s*\S+"), r"\1=<redacted>"),
)


def _scrub(message: str) -> str:
    for pattern, replacement in _SCRUBS:
        message = pattern.sub(replacement, message)
    return message[:200]


class Quota:
    """The counters behind one :class:`~claude_rbac.rbac.RBAC`, for its sync and async clients.

    ``clock`` (default ``time.time``, or ``storage_options["clock"]``) is what the windows are read with;
    tests pass a controlled one.
    """

    def __init__(
        self,
        storage: str = "memory://",
        *,
        key_prefix: str = "claude_rbac",
        storage_options: dict[str, Any] | None = None,
        async_storage: str | None = None,
        clock: Clock | None = None,
        settle_within: float = MAX_AGE,
        spend_recorder: SpendRecorder | None = None,
    ) -> None:
        self.uri = storage
        self.key_prefix = key_prefix
        self.is_memory = scheme_of(storage) == "memory"
        given = dict(storage_options or {})
        self._clock: Clock = clock or given.pop("clock", None) or time.time
        if self.is_memory:
            given["clock"] = self._clock
        self.storage = build_storage(storage, options_for(storage, given))
        self._memory = MemoryBuckets(self.storage) if self.is_memory else None
        self._async_uri = None if self.is_memory else (async_storage or async_storage_uri(storage))
        self._async_options = options_for(self._async_uri or "", {k: v for k, v in given.items() if k != "clock"})
        if self._async_uri and is_redis(self._async_uri):
            self._async_options.setdefault("implementation", "redispy")
        self._loops: PerLoop[Any] = PerLoop(self._open_async)
        if not self.is_memory:
            from ._redis import RedisBuckets  # redis is imported only when a Redis URI is used

            self._redis = RedisBuckets(self.storage, self._clock)
        self._queue = SettlementQueue(self._send, settle_within)
        self._ledger = (
            LedgerQueue(spend_recorder, inline=self.is_memory, max_age=settle_within) if spend_recorder else None
        )

    # -- planning ----------------------------------------------------------------------------------

    def buckets(self, **kwargs: Any) -> tuple[Bucket, ...]:
        """The buckets one call must fit in (see :func:`~._buckets.plan_buckets`), under this quota's key prefix."""
        return plan_buckets(self.key_prefix, **kwargs)

    # -- sync --------------------------------------------------------------------------------------

    def _run(self, buckets: Sequence[Bucket], *, take: bool, beyond: Sequence[Settlement] = ()) -> Outcome:
        """One round trip on Redis, carrying whatever is queued (and ``beyond``: usage to record now)."""
        if self._memory is not None:
            return self._memory.run(buckets, take=take)
        queued = self._queue.take()
        try:
            outcome = self._redis.run(buckets, take=take, settlements=[*queued, *beyond])
        except Exception as exc:
            self._queue.done(queued, failed=True)
            self._queue.put(beyond)  # kept, to ride the next round trip
            raise StorageFailure.of(exc) from None
        self._queue.done(queued)
        return outcome

    def _send(self, settlements: list[Settlement]) -> None:
        self._redis.run((), take=False, settlements=settlements)

    def acquire(self, buckets: Sequence[Bucket]) -> Reservation:
        """Take every bucket in one step (one round trip on Redis), or none and raise ``RateLimited``."""
        return _admitted(self._run(buckets, take=True))

    def settle(self, reservation: Reservation, used: Used) -> None:
        """Give back what the call reserved but did not use; record at once what it used beyond.

        On Redis a give-back waits for the next round trip (at most ``settle_within`` seconds); :meth:`flush`
        sends what waits.
        """
        if self._memory is not None:
            self._memory.settle(reservation, used)
            return
        beyond = self._queue_give_backs(reservation, used)
        if beyond:
            self._run((), take=False, beyond=beyond)

    def _queue_give_backs(self, reservation: Reservation, used: Used) -> list[Settlement]:
        owed = settlements_for(reservation, used, self._clock())
        self._queue.put([settlement for settlement in owed if settlement.amount < 0])
        return [settlement for settlement in owed if settlement.amount > 0]

    def flush(self, timeout: float = 5.0) -> bool:
        """Send the queued settlements (and hand the spend ledger what waits) now; False if the settlements did
        not reach the storage within ``timeout``."""
        if self._ledger is not None:
            self._ledger.flush()
        return True if self._memory is not None else self._queue.flush(timeout)

    def record_spend(self, principal: str, role: str, micro_dollars: int) -> None:
        """Hand a settled call's exact cost to the spend recorder (see :class:`~._ledger.SpendRecorder`)."""
        if self._ledger is not None:
            day = dt.datetime.fromtimestamp(self._clock(), dt.timezone.utc).date()
            self._ledger.put(day, principal, role, micro_dollars)

    def remaining(self, buckets: Sequence[Bucket]) -> list[tuple[Bucket, int, float]]:
        """(bucket, remaining, reset time) for each bucket, for rate-limit headers and the demo."""
        return _remaining(self._run(buckets, take=False))

    def counts(self, buckets: Sequence[Bucket]) -> list[tuple[Bucket, int, float]]:
        """(bucket, what its window holds, when that window ends) for calendar buckets (spend and budgets)."""
        return _counts(self._run(buckets, take=False))

    # -- async -------------------------------------------------------------------------------------

    def _open_async(self) -> Opened[Any]:
        from ._redis import AsyncRedisBuckets, is_cluster

        assert self._async_uri is not None
        storage = build_storage(self._async_uri, with_blocking_pool(self._async_uri, self._async_options))
        bridge = storage.bridge
        client = bridge.get_connection()
        backend = AsyncRedisBuckets(client, bridge.prefixed_key, self._clock)

        async def close() -> None:
            await backend.close()
            for connection in connections_of(bridge):
                await connection.aclose()
                pool = getattr(connection, "connection_pool", None)
                if pool is not None:  # a pool we passed in is not closed with its client
                    await pool.disconnect()

        return Opened(backend, close, storage.check if is_cluster(client) else None)

    async def _arun(self, buckets: Sequence[Bucket], *, take: bool, beyond: Sequence[Settlement] = ()) -> Outcome:
        if self._memory is not None:
            return self._memory.run(buckets, take=take)
        queued: list[Settlement] = []
        try:
            backend = await self._loops.get()
            queued = self._queue.take()
            outcome = cast(Outcome, await backend.run(buckets, take=take, settlements=[*queued, *beyond]))
        except Exception as exc:
            self._queue.done(queued, failed=True)
            self._queue.put(beyond)
            raise StorageFailure.of(exc) from None
        self._queue.done(queued)
        return outcome

    async def aacquire(self, buckets: Sequence[Bucket]) -> Reservation:
        """:meth:`acquire` for async clients: never blocks the event loop (memory is in-process; Redis is asyncio)."""
        return _admitted(await self._arun(buckets, take=True))

    async def asettle(self, reservation: Reservation, used: Used) -> None:
        """:meth:`settle` for async clients."""
        if self._memory is not None:
            self._memory.settle(reservation, used)
            return
        beyond = self._queue_give_backs(reservation, used)
        if beyond:
            await self._arun((), take=False, beyond=beyond)

    async def aremaining(self, buckets: Sequence[Bucket]) -> list[tuple[Bucket, int, float]]:
        return _remaining(await self._arun(buckets, take=False))

    async def acounts(self, buckets: Sequence[Bucket]) -> list[tuple[Bucket, int, float]]:
        return _counts(await self._arun(buckets, take=False))

    # -- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Send what is queued (and stop the flusher), then disconnect the sync storage's connections."""
        if self._memory is None:
            self._queue.close(2.0)
        if self._ledger is not None:
            self._ledger.close()
        if self._memory is None:
            self._redis.close()
        for connection in connections_of(self.storage):
            connection.close()

    async def aclose(self) -> None:
        """Close the running event loop's async connections (each loop's also close when that loop shuts down)."""
        await self._loops.aclose()


def _admitted(outcome: Outcome) -> Reservation:
    now, checks, verdict = outcome
    if verdict.refused is None:
        return reservation_of(checks)
    check = checks[verdict.refused]
    raise _limited(check.bucket, retry_after(check, verdict.states[verdict.refused], now), now)


def _remaining(outcome: Outcome) -> list[tuple[Bucket, int, float]]:
    now, checks, verdict = outcome
    return [(check.bucket, *remaining(check, state, now)) for check, state in zip(checks, verdict.states, strict=True)]


_SPEND_SCOPES = {
    "principal": "your",
    "route": "this route's",
    "pool": "your role's shared",
    "workspace": "the workspace's",
}


def _spend_message(bucket: Bucket, now: float) -> str:
    """Which limit refused (day or month; yours, the route's, the role's pool, the workspace's), never a figure
    of anyone else's: only what this call would have reserved, when that alone is more than the limit."""
    scope = _SPEND_SCOPES.get(bucket.scope, "the")
    if bucket.cost > bucket.limit:
        return (
            f"This call may cost up to ${dollars_of(bucket.cost)}, more than {scope} whole spend limit for a "
            f"{bucket.period} (UTC) allows; lower max_tokens or the tools' max_uses."
        )
    _, ends = bucket.window(now)
    reset = dt.datetime.fromtimestamp(ends, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return message_for(
        "spend_limit_exceeded", "", scope=scope[:1].upper() + scope[1:], period=bucket.period, reset=reset
    )


def _counts(outcome: Outcome) -> list[tuple[Bucket, int, float]]:
    _, checks, verdict = outcome
    return [(check.bucket, state.count, check.ends) for check, state in zip(checks, verdict.states, strict=True)]


def _limited(bucket: Bucket, retry_after: float, now: float) -> RateLimited:
    if bucket.kind == "budget":
        return RateLimited(retry_after=retry_after, reason="token_budget_exceeded")
    if bucket.kind == "spend":
        return RateLimited(_spend_message(bucket, now), retry_after=retry_after, reason="spend_limit_exceeded")
    variant = "" if bucket.kind == "rpm" else "tokens"
    return RateLimited(message_for("rate_limited", variant), retry_after=retry_after)
