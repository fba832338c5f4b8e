"""The settlement hook of the daily spend ledger: what a call's exact cost is handed to, off the request path.

Whenever the exact cost of a governed call is known (its usage settled), the quota hands it to the
:class:`SpendRecorder` given to :class:`~claude_rbac.RBAC` (``spend_recorder=``), if any:

* on ``memory://`` inline, right after the settlement (a dict update under the storage's lock before it);
* on Redis it is summed in this process per (UTC day, principal, role) and handed over by a daemon thread
  at most ``settle_within`` seconds later (1 by default), by ``flush()`` and by ``close()``: never on the
  request path, whatever the recorder does (a database write, a Redis pipeline).

So one row may carry several calls (``calls`` says how many) and a recorder sees each call once. A recorder
with a ``record_many(day, rows)`` method (:class:`BatchSpendRecorder`, as :class:`~._spend_ledger.SpendLedger`
is) gets each drain's rows in one call per UTC day, so it can write them in one round trip; any other gets
one ``record`` call per row. A recorder that raises is logged and its figures dropped (the quota's own
counters are not affected): a ledger is a report, the limits are enforced by the buckets.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from .. import _forksafe as forksafe
from ..policy import dollars_of

__all__ = ["BatchSpendRecorder", "LedgerQueue", "LedgerRow", "SpendRecorder"]

log = logging.getLogger("claude_rbac")
Key = tuple[dt.date, str, str]


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """What one principal spent under one role on one day."""

    principal: str
    """The id as recorded: the app's id, its keyed pseudonym, or ``""`` when ids are not kept."""
    role: str
    micro_dollars: int
    calls: int

    @property
    def dollars(self) -> Decimal:
        return dollars_of(self.micro_dollars)


@runtime_checkable
class SpendRecorder(Protocol):
    """Receives the exact cost of settled calls, for a daily spend ledger per principal and role.

    ``day``: the UTC day the cost was settled in (a call's cost counts on the day its usage became known);
    ``principal``: the principal's id as the app's principal loader gives it (pseudonymise in the recorder if
    the ledger must not hold it); ``role``: the role name; ``micro_dollars``: the exact cost, rounded up once per
    call to whole micro-dollars (``Decimal(micro_dollars) / 10**6`` is dollars), summed over ``calls`` calls.
    Called from one thread at a time (never concurrently for one :class:`~claude_rbac.RBAC`); it may block.

    Optional: a ``record_many(day, rows)`` method as well (see :class:`BatchSpendRecorder`) and the queue hands
    it all the rows of one UTC day that one drain carries, in one call (a drain spanning midnight makes two),
    instead of one ``record`` call per row: a recorder writing to a network store can then make one round
    trip per drain, not one per principal. ``record`` stays required (it is what the protocol checks).
    """

    def record(self, day: dt.date, principal: str, role: str, micro_dollars: int, calls: int) -> None: ...


@runtime_checkable
class BatchSpendRecorder(SpendRecorder, Protocol):
    """A :class:`SpendRecorder` that also takes a drain's rows of one day at once.

    ``record_many(day, rows)``: each :class:`LedgerRow` is what its principal spent under its role on
    ``day`` (UTC) since the last drain; a (principal, role) appears once per call. If it raises, every row of
    that call is logged as dropped, none is retried (a write whose outcome is unknown could count twice).
    """

    def record_many(self, day: dt.date, rows: Sequence[LedgerRow]) -> None: ...


class LedgerQueue:
    """Costs waiting for the recorder, summed per (day, principal, role); drained by one daemon thread."""

    def __init__(self, recorder: SpendRecorder, *, inline: bool, max_age: float) -> None:
        self._recorder = recorder
        batch = getattr(recorder, "record_many", None)
        self._record_many: Callable[[dt.date, Sequence[LedgerRow]], None] | None = batch if callable(batch) else None
        self._inline = inline
        self._max_age = max_age
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._reset()
        forksafe.register(self)

    def _reset(self) -> None:
        self._wake = threading.Condition(self._lock)
        self._pending: dict[Key, list[int]] = {}
        self._thread: threading.Thread | None = None
        self._closed = False

    def _after_fork_in_child(self) -> None:
        self._reset()

    def put(self, day: dt.date, principal: str, role: str, micro_dollars: int) -> None:
        if self._inline:
            self._send({(day, principal, role): [micro_dollars, 1]})
            return
        with self._lock:
            totals = self._pending.setdefault((day, principal, role), [0, 0])
            totals[0] += micro_dollars
            totals[1] += 1
            if self._thread is None:
                self._closed = False
                self._thread = threading.Thread(target=self._drain, name="claude_rbac-ledger", daemon=True)
                self._thread.start()

    def flush(self) -> None:
        """Hand what waits to the recorder now."""
        with self._lock:
            pending, self._pending = self._pending, {}
        self._send(pending)

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._closed = True
            self._wake.notify()

    def _send(self, pending: dict[Key, list[int]]) -> None:
        with self._send_lock:
            if self._record_many is None:
                for (day, principal, role), (micro, calls) in pending.items():
                    try:
                        self._recorder.record(day, principal, role, micro, calls)
                    except Exception as exc:
                        _dropped(exc, 1)
                return
            days: dict[dt.date, list[LedgerRow]] = {}
            for (day, principal, role), (micro, calls) in pending.items():
                days.setdefault(day, []).append(LedgerRow(principal, role, micro, calls))
            for day in sorted(days):  # one call per UTC day: one failing drops that day's rows only
                try:
                    self._record_many(day, days[day])
                except Exception as exc:
                    _dropped(exc, len(days[day]))

    def _drain(self) -> None:
        idle = 0.0
        with self._lock:
            while not self._closed and idle < 60.0:
                self._wake.wait(self._max_age)
                pending, self._pending = self._pending, {}
                if not pending:
                    idle += self._max_age
                    continue
                idle = 0.0
                self._lock.release()
                try:
                    self._send(pending)
                finally:
                    self._lock.acquire()
            self._thread = None


def _dropped(exc: Exception, rows: int) -> None:
    """Log a failed hand-over; never retried (an ``HINCRBY`` whose outcome is unknown could count twice)."""
    log.warning(
        "claude_rbac: the spend recorder failed (%s); its figures are dropped (%d %s)",
        type(exc).__name__,
        rows,
        "row" if rows == 1 else "rows",
    )
