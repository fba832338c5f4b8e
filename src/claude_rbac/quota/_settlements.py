"""Settlements on Redis ride the next round trip: queued here, sent inside the next call's script.

After a call, the tokens it reserved but did not use go back to its buckets. That is a write, and the call
has paid its round trip already; so the give-back waits in this process's queue, and the next admission
(sync or async, any principal) takes the whole queue into its own script call: no extra round trip, no
thread woken per call. Nothing waits longer than ``max_age`` seconds (1 by default):

* every admission and every ``remaining()`` read sends all that is queued;
* when calls stop, one daemon thread per process sends what has waited ``max_age``. It starts with the
  first settlement and is never notified while calls flow: it looks at the queue once per ``max_age``
  (or when the oldest item comes due), and sleeps untimed after a whole period without a settlement,
  until the next one. So: about one wake-up per ``max_age`` however many calls, never a thread per call;
* ``flush()``, ``close()`` and interpreter exit (``atexit``) send the rest; ``close()`` also ends the
  flusher, and so does a minute without settlements (the next one starts it again).

Usage *beyond* a reservation is not queued: the caller sends it at once (one more round trip, only for the
rare call whose usage exceeded the estimate), so that other workers see it on their next call. Hence what a
crash (or a failed send) can lose is give-backs only: their reservations stand until the window ends, so
usage is over-counted, never under-counted. For the same reason a send that fails, or whose outcome is
unknown (a timeout), drops the give-backs it carried (sending them twice would under-count) and re-queues
the rest.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence

from .. import _forksafe as forksafe
from ._engine import Settlement

__all__ = ["MAX_AGE", "SettlementQueue"]

log = logging.getLogger("claude_rbac")
MAX_AGE = 1.0
"""Seconds a queued settlement may wait for a call to carry it before the flusher thread sends it."""
IDLE_EXIT = 60.0
"""Seconds the flusher waits with nothing queued before it ends (the next settlement starts one again)."""
MAX_QUEUED = 100_000
"""Give-backs beyond this many are dropped (an outage): the reservations they would return stand."""


class SettlementQueue:
    """This process's settlements waiting for a round trip. Thread-safe and fork-safe."""

    def __init__(self, send: Callable[[list[Settlement]], object], max_age: float = MAX_AGE) -> None:
        self._send = send
        self.max_age = max_age
        self._lock = threading.Lock()
        self._reset()
        forksafe.register(self)
        self._at_exit = False

    def _reset(self) -> None:
        self._due = threading.Condition(self._lock)
        """The flusher sleeps on it: notified only when the queue stops being empty while it idles."""
        self._landed = threading.Condition(self._lock)
        self._flushing = 0
        """Callers of :meth:`flush` waiting on ``_landed``: with none, a send that lands notifies nobody."""
        self._items: list[Settlement] = []
        self._since = 0.0
        self._in_flight = 0
        self._puts = 0
        """Settlements put so far: the flusher idles (and needs a notify) only after a period without one."""
        self._thread: threading.Thread | None = None
        self._idle = False
        self._closed = False

    def _after_fork_in_child(self) -> None:
        self._reset()  # the parent sends what it queued; the child starts empty, without a thread

    def __len__(self) -> int:
        return len(self._items)

    # -- the request path ------------------------------------------------------------------------------

    def put(self, items: Sequence[Settlement]) -> None:
        if not items:
            return
        with self._lock:
            self._puts += 1
            if not self._items:
                self._since = time.monotonic()
            if len(self._items) < MAX_QUEUED:
                self._items.extend(items)
            else:
                self._items.extend(owed for owed in items if owed.amount > 0)
            if not self._at_exit:  # registered with the first settlement: a memory quota never has one
                self._at_exit = True
                ref = weakref.ref(self)
                atexit.register(lambda: (queue := ref()) is not None and queue.flush(1.0))
            if self._thread is None:
                self._closed = False
                self._thread = threading.Thread(target=self._flusher, name="claude_rbac-settlements", daemon=True)
                self._thread.start()
            elif self._idle:
                self._due.notify()

    def take(self) -> list[Settlement]:
        """Everything queued, to ride the caller's round trip; pair with :meth:`done`."""
        if not self._items:  # reading a list's length needs no lock; an item put meanwhile rides the next call
            return []
        with self._lock:
            items, self._items = self._items, []
            if items:  # another thread may have taken them since the check: an empty take is not in flight
                self._in_flight += 1
            return items

    def done(self, items: Sequence[Settlement], *, failed: bool = False) -> None:
        """The round trip that carried ``items`` ended; after a failure, re-queue what must not be lost."""
        if not items:
            return
        with self._lock:
            self._in_flight -= 1
            if failed:
                kept = [owed for owed in items if owed.amount > 0]
                if len(kept) < len(items):
                    log.warning(
                        "claude_rbac: %d token give-backs were not settled (storage failure); their reservations "
                        "stand until their windows end",
                        len(items) - len(kept),
                    )
                if kept and not self._items:
                    self._since = time.monotonic()
                self._items[:0] = kept
            if not self._in_flight and self._flushing:
                self._landed.notify_all()

    # -- off the request path ----------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Send what is queued now and wait for sends in flight; False if that failed or took over ``timeout``."""
        deadline = time.monotonic() + timeout
        items = self.take()
        try:
            if items:
                self._send(items)
        except Exception as exc:
            self.done(items, failed=True)
            log.warning("claude_rbac: could not settle token usage (%s)", exc)
            return False
        self.done(items)
        with self._lock:
            self._flushing += 1
            try:
                while self._in_flight:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._landed.wait(left)
            finally:
                self._flushing -= 1
            return not self._items

    def close(self, timeout: float = 5.0) -> bool:
        """Send what is queued and stop the flusher (a later settlement starts it again)."""
        sent = self.flush(timeout)
        with self._lock:
            self._closed = True
            self._due.notify()
        return sent

    def _flusher(self) -> None:
        seen = -1
        with self._lock:
            while not self._closed:
                if not self._items:
                    if self._puts == seen:  # a whole period without a settlement: sleep until the next one
                        self._idle = True
                        self._due.wait(IDLE_EXIT)
                        self._idle = False
                        if not self._items and self._puts == seen:
                            break  # idle that long: end; the next settlement starts a flusher again
                    else:  # traffic: calls carry the queue; look again in a period, without being notified
                        seen = self._puts
                        self._due.wait(self.max_age)
                    continue
                wait = self._since + self.max_age - time.monotonic()
                if wait > 0:
                    seen = self._puts
                    self._due.wait(wait)
                    continue
                items, self._items = self._items, []
                self._in_flight += 1
                self._lock.release()
                try:
                    self._send(items)
                except Exception as exc:
                    log.warning("claude_rbac: could not settle token usage (%s)", exc)
                    self.done(items, failed=True)
                    time.sleep(self.max_age)  # an outage: retry what is kept after a pause, not in a loop
                else:
                    self.done(items)
                finally:
                    self._lock.acquire()
            if self._thread is threading.current_thread():
                self._thread = None
