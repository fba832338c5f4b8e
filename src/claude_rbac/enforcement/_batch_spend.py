"""Settling a message batch's dollars from its results (see ``docs/spend.md``, "Batches").

A batch reserves every item's worst case at batch rates when it is created (:mod:`._batch_holds` keeps that
reservation under the batch id). Its exact cost is known only from its results, a JSON Lines download the SDK
streams (``client.messages.batches.results(id)``). When a governed client reads the results of a batch that
holds dollars, :class:`ResultsStream` passes the bytes through untouched and prices each line on the way:
a ``succeeded`` result at its ``message.usage`` at batch rates (its model's price, each advisor at its own),
an ``errored``, ``expired`` or ``canceled`` one at $0 (Anthropic does not bill them). Each item is rounded up
to whole micro-dollars, as a call is. When the body has been read to its end, the batch is settled once:
:meth:`~._batch_holds.BatchHolds.take` claims the hold atomically, the difference between the reservation and
the exact sum goes back to the windows the batch was charged, and the sum lands on the cost counter and the
spend ledger of the batch's creator (whoever reads the results: a ``batches = "all"`` role reads for them).

What keeps the reservation (over-counted, never under): results read only in part, a line that cannot be
parsed or priced (logged). Nothing here fails the read: a storage error is logged and the results flow on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any, Final

import httpx2

from ..policy.prices import Cost, PriceTable
from ..quota import MICRO_USD
from ._attempt import Attempt, Binding
from ._batch_holds import BatchHold
from ._enforcer import Enforcer
from ._spend import exact_cost
from ._usage import usage_of

__all__ = ["ResultsScan", "akeep_hold", "awatch_results", "keep_hold", "watch_results"]

log = logging.getLogger("claude_rbac")
FREE_RESULTS: Final = frozenset({"errored", "expired", "canceled"})
"""Result types Anthropic does not bill."""
_MAX_LINE: Final = 64 << 20
"""A results line longer than this is not priced (the batch keeps its reservation)."""


class ResultsScan:
    """Prices a batch's JSON Lines results as they pass; ``total`` is ``None`` when any line cannot be priced."""

    def __init__(self, prices: PriceTable, cache_ttl: str | None) -> None:
        self._prices = prices
        self._cache_ttl = cache_ttl
        self._buffer = b""
        self.failure: str | None = None
        self.micro_dollars = 0
        self.by_model: dict[str, tuple[Decimal, int]] = {}
        """Per model that answered: (exact dollars, micro-dollars), for the cost counter."""

    @property
    def total(self) -> int | None:
        return None if self.failure is not None else self.micro_dollars

    def feed(self, chunk: bytes) -> None:
        if self.failure is not None:
            return
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._line(line)
        if len(self._buffer) > _MAX_LINE:
            self._fail("a results line is too long")

    def finish(self) -> None:
        """The body ended: price what is left in the buffer."""
        if self.failure is None:
            self._line(self._buffer)
        self._buffer = b""

    def _fail(self, why: str) -> None:
        if self.failure is None:
            self.failure = why
        self._buffer = b""

    def _line(self, line: bytes) -> None:
        if self.failure is not None or not line.strip():
            return
        try:
            item: Any = json.loads(line)
            result = item["result"]
            kind = result["type"]
        except (ValueError, TypeError, KeyError):
            self._fail("a results line is not a batch result")
            return
        if kind in FREE_RESULTS:
            return
        if kind != "succeeded":
            self._fail(f"a result of type {str(kind)[:40]!r}")
            return
        self._succeeded(result.get("message") if isinstance(result, Mapping) else None)

    def _succeeded(self, message: object) -> None:
        usage = usage_of(message) if isinstance(message, Mapping) else None
        if usage is None or usage.malformed or usage.billable is None:
            self._fail("a succeeded result without a usable usage")
            return
        usage.billable = dataclasses.replace(usage.billable, batch=True)
        usage.advisors = tuple((model, dataclasses.replace(b, batch=True)) for model, b in usage.advisors)
        priced = exact_cost(self._prices, usage, None, self._cache_ttl)
        if priced is None:
            self._fail("a succeeded result could not be priced")
            return
        self.micro_dollars += priced.micro_dollars
        model = usage.model or ""
        dollars, micro = self.by_model.get(model, (Decimal(0), 0))
        self.by_model[model] = (dollars + priced.dollars, micro + priced.micro_dollars)


class ResultsStream(httpx2.SyncByteStream):
    """Passes the results body through untouched; calls ``on_end(scan)`` once, only if it was read to its end."""

    def __init__(self, body: httpx2.SyncByteStream, scan: ResultsScan, on_end: Callable[[ResultsScan], None]) -> None:
        self._body = body
        self._scan = scan
        self._on_end = on_end

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._scan.feed(chunk)
            yield chunk
        self._scan.finish()
        self._on_end(self._scan)

    def close(self) -> None:
        self._body.close()


class AsyncResultsStream(httpx2.AsyncByteStream):
    """The async twin of :class:`ResultsStream`; ``on_end`` is awaited."""

    def __init__(
        self, body: httpx2.AsyncByteStream, scan: ResultsScan, on_end: Callable[[ResultsScan], Awaitable[None]]
    ) -> None:
        self._body = body
        self._scan = scan
        self._on_end = on_end

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._body:
            self._scan.feed(chunk)
            yield chunk
        self._scan.finish()
        await self._on_end(self._scan)

    async def aclose(self) -> None:
        await self._body.aclose()


# -- at creation ---------------------------------------------------------------------------------------


def _hold_of(binding: Binding, call: Attempt) -> BatchHold | None:
    principal, role = binding.principal, call.plan.decision.role
    if call.reservation is None or principal is None or role is None:
        return None
    return BatchHold.of(principal.id, role, call.key.workspace, call.cache_ttl, call.reservation)


def keep_hold(enforcer: Enforcer, binding: Binding, call: Attempt, batch_id: str) -> None:
    """Keep what a new batch reserved in dollars, to settle it from its results. Never raises."""
    if (hold := _hold_of(binding, call)) is None:
        return
    try:
        enforcer.batch_holds.keep(batch_id, hold)
    except Exception as exc:
        _not_kept(exc)


async def akeep_hold(enforcer: Enforcer, binding: Binding, call: Attempt, batch_id: str) -> None:
    if (hold := _hold_of(binding, call)) is None:
        return
    try:
        await enforcer.batch_holds.akeep(batch_id, hold)
    except Exception as exc:
        _not_kept(exc)


def _not_kept(exc: Exception) -> None:
    log.warning(
        "claude_rbac: could not keep a new batch's dollar reservation (%s); it will not be settled from its "
        "results (over-counted, never under)",
        type(exc).__name__,
    )


# -- at reading ----------------------------------------------------------------------------------------


def watch_results(enforcer: Enforcer, batch_id: str, http: httpx2.Response) -> None:
    """Price the results as they are read, and settle the batch once they have all been read."""
    try:
        hold = enforcer.batch_holds.peek(batch_id)
    except Exception as exc:
        _unsettled(exc)
        return
    if hold is None:
        return  # no dollars held, or settled already
    scan = ResultsScan(enforcer.generation.policy.prices, hold.cache_ttl)
    http.stream = ResultsStream(http.stream, scan, lambda done: _settle(enforcer, batch_id, done))  # type: ignore[arg-type]


async def awatch_results(enforcer: Enforcer, batch_id: str, http: httpx2.Response) -> None:
    try:
        hold = await enforcer.batch_holds.apeek(batch_id)
    except Exception as exc:
        _unsettled(exc)
        return
    if hold is None:
        return
    scan = ResultsScan(enforcer.generation.policy.prices, hold.cache_ttl)

    async def on_end(done: ResultsScan) -> None:
        await _asettle(enforcer, batch_id, done)

    http.stream = AsyncResultsStream(http.stream, scan, on_end)  # type: ignore[arg-type]


def _settle(enforcer: Enforcer, batch_id: str, scan: ResultsScan) -> None:
    if (total := _total(scan)) is None:
        return
    try:
        hold = enforcer.batch_holds.take(batch_id)
        if hold is not None:
            enforcer.quota.settle(hold.reservation, {MICRO_USD: total})
            _record(enforcer, hold, scan, total)
    except Exception as exc:
        _unsettled(exc)


async def _asettle(enforcer: Enforcer, batch_id: str, scan: ResultsScan) -> None:
    if (total := _total(scan)) is None:
        return
    try:
        hold = await enforcer.batch_holds.atake(batch_id)
        if hold is not None:
            await enforcer.quota.asettle(hold.reservation, {MICRO_USD: total})
            _record(enforcer, hold, scan, total)
    except Exception as exc:
        _unsettled(exc)


def _total(scan: ResultsScan) -> int | None:
    total = scan.total
    if total is None:
        log.warning("claude_rbac: a batch's results could not be priced (%s); it keeps its reservation", scan.failure)
    return total


def _record(enforcer: Enforcer, hold: BatchHold, scan: ResultsScan, total: int) -> None:
    for model, (dollars, micro) in scan.by_model.items():
        if micro:
            enforcer.auditor.record_cost(hold.role, model or None, hold.workspace, Cost(dollars, micro))
    if total:
        enforcer.quota.record_spend(hold.principal_id, hold.role, total)


def _unsettled(exc: Exception) -> None:
    log.warning(
        "claude_rbac: could not settle a batch's dollars from its results (%s); it keeps its reservation",
        type(exc).__name__,
    )
