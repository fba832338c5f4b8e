"""The settlement hook of the daily spend ledger: what a call's exact cost is handed to, off the request path.

Whenever the exact cost of a governed call is known (its usage settled), the quota hands it to the
:class:`SpendRecorder` given to :class:`~claude_rbac.RBAC` (``spend_recorder=``), if any:

* on ``memory://`` inline, right after the settlement (a dict update under the storage's lock before it);
* on Redis it is summed in this process per (UTC day, principal, role) and handed over by a daemon thread
  at most ``settle_within`` seconds later (1 by default), by ``flush()`` and by ``close()``: never on the
  request path, whatever the recorder does (a database write, a Redis pipeline).

So one ``record`` call may carry several calls (``calls`` says how many) and a recorder sees each call once.
A recorder that raises is logged and its figures dropped (the quota's own counters are not affected): a
ledger is a report, the limits are enforced by the buckets.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Protocol, runtime_checkable

from .. import _forksafe as forksafe

__all__ = ["LedgerQueue", "SpendRecorder"]

log = logging.getLogger("claude_rbac")
Key = tuple[dt.date, str, str]


@runtime_checkable
class SpendRecorder(Protocol):
    """Receives the exact cost of settled calls, for a daily spend ledger per principal and role.

    ``day``: the UTC day the cost was settled in (a call's cost counts on the day its usage became known);
    ``principal``: the principal's id as the app's principal loader gives it (pseudonymise in the recorder if
    the ledger must not hold it); ``role``: the role name; ``micro_dollars``: the exact cost, rounded up once per
    call to whole micro-dollars (``Decimal(micro_dollars) / 10**6`` is dollars), summed over ``calls`` calls.
    Called from one thread at a time (never concurrently for one :class:`~claude_rbac.RBAC`); it may block.
    """

    def record(self, day: dt.date, principal: str, role: str, micro_dollars: int, calls: int) -> None: ...


class LedgerQueue:
    """Costs waiting for the recorder, summed per (day, principal, role); drained by one daemon thread."""

    def __init__(self, recorder: SpendRecorder, *, inline: bool, max_age: float) -> None:
        self._recorder = recorder
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
            for (day, principal, role), (micro, calls) in pending.items():
                try:
                    self._recorder.record(day, principal, role, micro, calls)
                except Exception as exc:
                    log.warning(
                        "claude_rbac: the spend recorder failed (%s); its figures are dropped", type(exc).__name__
                    )

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
