"""A ``limits`` memory storage that expires entries on the request path: no timer, no thread.

limits' own ``MemoryStorage`` (``memory://``) expires entries from a ``threading.Timer``: a hit starts
a one-shot timer thread whenever none runs (the request waits while the new thread takes the GIL),
each run walks every key under the GIL (its cost grows with the number of active users), and the
per-key lists of users who went away are never freed. :class:`LazyMemoryStorage` gives the strategies
the same answers, call for call, and expires inline instead:

* a moving window drops its old entries when its own key is hit;
* every key waits once in a heap ordered by when it could expire. A call that finds the head of the
  heap due pops at most ``sweep_batch`` entries, freeing the expired keys and re-queueing the ones
  still in use: at most once per ``sweep_interval`` while the sweep keeps up, on every call while it
  catches up. The work per call is bounded and does not grow with the number of keys held.

One lock guards the whole storage and nothing waits on anything else, so the async client may share it
from the event loop. The lock is taken around a fork and re-created in the child, which never inherits
it held nor the counters half-updated.

The class registers no URI scheme: ``memory://`` keeps meaning limits' storage for every other user of
``limits`` in the process (Flask-Limiter...); build this one directly. claude_rbac's quota takes a call's
buckets all at once under the same lock, through the primitives at the end of the class (``locked()``).
"""

from __future__ import annotations

import heapq
import threading
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from itertools import repeat
from math import floor, inf
from typing import Any

from limits.storage.base import MovingWindowSupport, SlidingWindowCounterSupport, Storage, TimestampedSlidingWindow

from .. import _forksafe as forksafe

__all__ = ["LazyMemoryStorage"]

Clock = Callable[[], float]
SWEEP_INTERVAL = 1.0
"""Seconds between two sweeps while the sweep keeps up with what expires."""
SWEEP_BATCH = 64
"""Queue entries one sweep looks at, at most: the bound on what one call pays for expiry."""
COMPACT_BELOW = 4096
"""A table rebuilt after most of its keys were freed holds at most this many keys (so the copy stays cheap)."""


class _Counter:
    """A fixed-window (or sliding-window half) counter, and when it expires."""

    __slots__ = ("count", "expires_at", "queued")

    def __init__(self, expires_at: float) -> None:
        self.count = 0
        self.expires_at = expires_at
        self.queued = expires_at
        """The deadline of this counter's one entry in the expiry queue."""


class _Window:
    """A moving window: the times of the entries it admitted, oldest first."""

    __slots__ = ("expiry", "queued", "times")

    def __init__(self, expiry: float, now: float) -> None:
        self.times = array("d")
        self.expiry = expiry
        self.queued = now + expiry

    def deadline(self) -> float:
        """When the newest entry leaves the window (-inf for an empty window)."""
        return self.times[-1] + self.expiry if self.times else -inf


class _Held:
    """``locked()``'s context: the storage's lock held, the time now (after a due sweep) given to the block.

    One per storage, reused: entering takes the lock, so no two blocks share it at once (a class, as a
    generator-based context manager cost several times more on every call)."""

    __slots__ = ("_storage",)

    def __init__(self, storage: LazyMemoryStorage) -> None:
        self._storage = storage

    def __enter__(self) -> float:
        storage = self._storage
        storage._lock.acquire()
        try:
            return storage._tick()
        except BaseException:
            storage._lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        self._storage._lock.release()


class LazyMemoryStorage(Storage, MovingWindowSupport, SlidingWindowCounterSupport, TimestampedSlidingWindow):
    """limits' in-memory storage semantics, with expiry done inline and in bounded steps.

    ``clock`` (default ``time.time``) is injectable for tests. ``len(storage)`` is the number of keys held.
    """

    STORAGE_SCHEME = None  # not registered: see the module docstring

    def __init__(
        self,
        uri: str | None = None,
        wrap_exceptions: bool = False,
        *,
        clock: Clock = time.time,
        sweep_interval: float = SWEEP_INTERVAL,
        sweep_batch: int = SWEEP_BATCH,
        **options: float | str | bool,
    ) -> None:
        if sweep_batch < 1:
            raise ValueError("sweep_batch must be at least 1")
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._sweep_batch = sweep_batch
        self._lock = threading.Lock()
        self._counters: dict[str, _Counter] = {}
        self._windows: dict[str, _Window] = {}
        self._queue: list[tuple[float, bool, str]] = []
        """(deadline, is a window, key): one entry per key held, plus stale ones of keys since dropped."""
        self._next_sweep = -inf
        self._freed = [0, 0]
        """Keys freed from the counters and from the windows since each table was last rebuilt."""
        self._held = _Held(self)
        forksafe.register(self)
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"], state["_held"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._held = _Held(self)
        forksafe.register(self)

    def __len__(self) -> int:
        with self._lock:
            return len(self._counters) + len(self._windows)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    # -- expiry ------------------------------------------------------------------------------------

    def _tick(self) -> float:
        """The time now, after a bounded sweep if one is due. Call with the lock held."""
        now = self._clock()
        if now >= self._next_sweep:
            queue = self._queue
            if queue and queue[0][0] < now:
                self._sweep(now, self._sweep_batch)
            caught_up = not queue or queue[0][0] >= now
            self._next_sweep = now + self._sweep_interval if caught_up else now
        return now

    def _sweep(self, now: float, budget: int) -> int:
        """Pop up to ``budget`` due queue entries: free the keys that expired, re-queue the others."""
        queue, freed = self._queue, 0
        while budget and queue and queue[0][0] < now:
            budget -= 1
            deadline, is_window, key = heapq.heappop(queue)
            table: dict[str, Any] = self._windows if is_window else self._counters
            record = table.get(key)
            if record is None or record.queued != deadline:
                continue  # dropped (or dropped and made again) since it was queued: a stale entry
            if is_window:
                due = record.deadline()
                expired = due < now  # an entry at exactly now - expiry still counts (as in limits)
            else:
                due = record.expires_at
                expired = due <= now
            if expired:
                del table[key]
                freed += 1
                self._freed[is_window] += 1
            else:
                record.queued = due
                heapq.heappush(queue, (due, is_window, key))
        if freed:
            self._compact()
        return freed

    def _compact(self) -> None:
        """Rebuild a table that now holds a small part of what it held: a dict keeps its size when keys go."""
        freed, counters, windows = self._freed, len(self._counters), len(self._windows)
        if counters <= COMPACT_BELOW and freed[False] > 4 * counters + 1024:
            self._counters, freed[False] = dict(self._counters), 0
        if windows <= COMPACT_BELOW and freed[True] > 4 * windows + 1024:
            self._windows, freed[True] = dict(self._windows), 0

    def sweep(self) -> int:
        """Free every key expired by now, however many (tests and maintenance); the number of keys freed."""
        with self._lock:
            now, freed = self._clock(), 0
            while self._queue and self._queue[0][0] < now:
                freed += self._sweep(now, self._sweep_batch)
            self._next_sweep = now + self._sweep_interval
            return freed

    # -- counters (fixed window, and the two halves of a sliding window) ------------------------------

    def _live_counter(self, key: str, now: float) -> _Counter | None:
        counter = self._counters.get(key)
        if counter is not None and counter.expires_at <= now:
            del self._counters[key]
            self._freed[False] += 1
            return None
        return counter

    def _incr(self, key: str, expiry: float, amount: int, now: float) -> int:
        counter = self._live_counter(key, now)
        if counter is None:
            counter = self._counters[key] = _Counter(now + expiry)
            heapq.heappush(self._queue, (counter.queued, False, key))
        counter.count += amount
        if counter.count == amount:  # it held 0: a new window starts here (limits' rule)
            counter.expires_at = now + expiry
        return counter.count

    def _decr(self, key: str, amount: int, now: float) -> int:
        counter = self._live_counter(key, now)
        if counter is None:
            return 0
        counter.count = max(counter.count - amount, 0)
        return counter.count

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add ``amount`` (may be negative) to the counter; a counter that held 0 expires ``expiry`` s from now."""
        with self._lock:
            return self._incr(key, expiry, amount, self._tick())

    def decr(self, key: str, amount: int = 1) -> int:
        """Take ``amount`` from the counter, never below 0."""
        with self._lock:
            return self._decr(key, amount, self._tick())

    def get(self, key: str) -> int:
        with self._lock:
            counter = self._live_counter(key, self._tick())
            return 0 if counter is None else counter.count

    def get_expiry(self, key: str) -> float:
        """When the counter expires; now for a counter that is not held (or has expired)."""
        with self._lock:
            now = self._tick()
            counter = self._live_counter(key, now)
            return now if counter is None else counter.expires_at

    def clear(self, key: str) -> None:
        with self._lock:
            self._counters.pop(key, None)
            self._windows.pop(key, None)

    def reset(self) -> int | None:
        with self._lock:
            held = max(len(self._counters), len(self._windows))
            self._queue = []
            self._counters, self._windows, self._freed = {}, {}, [0, 0]
            self._next_sweep = -inf
            return held

    def check(self) -> bool:
        return True

    # -- moving window -----------------------------------------------------------------------------

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Admit ``amount`` entries if the window then holds at most ``limit`` entries of the last ``expiry`` s."""
        if amount > limit:
            return False
        with self._lock:
            now = self._tick()
            if len(self.entries(key, expiry, now)) + amount > limit:
                return False
            self.push(key, expiry, amount, now)
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest entry still in the window, entries in the window); (now, 0) for an empty one."""
        with self._lock:
            now = self._tick()
            window = self._windows.get(key)
            if window is not None:
                times = window.times
                first = bisect_right(times, now - expiry)
                if first < len(times):
                    return times[first], len(times) - first
            return now, 0

    # -- sliding window counter ----------------------------------------------------------------------

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """limits' weighted two-window check, made atomic: the increment happens under the same lock."""
        if amount > limit:
            return False
        with self._lock:
            now = self._tick()
            previous_key, current_key = self.sliding_window_keys(key, expiry, now)
            previous_count, previous_ttl, current_count, _ = self._sliding(previous_key, current_key, expiry, now)
            weighted_count = previous_count * previous_ttl / expiry + current_count
            if floor(weighted_count) + amount > limit:
                return False
            current_count = self._incr(current_key, 2 * expiry, amount, now)
            weighted_count = previous_count * previous_ttl / expiry + current_count
            if floor(weighted_count) > limit:  # float rounding only, now that nothing races: limits' answer
                self._decr(current_key, amount, now)
                return False
            return True

    def _sliding(self, previous_key: str, current_key: str, expiry: int, now: float) -> tuple[int, float, int, float]:
        previous = self._live_counter(previous_key, now)
        current = self._live_counter(current_key, now)
        previous_count = 0 if previous is None else previous.count
        current_count = 0 if current is None else current.count
        previous_ttl = 0.0 if previous_count == 0 else (1 - (((now - expiry) / expiry) % 1)) * expiry
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return previous_count, previous_ttl, current_count, current_ttl

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        with self._lock:
            now = self._tick()
            previous_key, current_key = self.sliding_window_keys(key, expiry, now)
            return self._sliding(previous_key, current_key, expiry, now)

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        with self._lock:
            for window_key in self.sliding_window_keys(key, expiry, self._clock()):
                self._counters.pop(window_key, None)
                self._windows.pop(window_key, None)

    # -- primitives for claude_rbac.quota's buckets: call them inside ``locked()`` ----------------------

    def locked(self) -> _Held:
        """Hold the storage across several steps (one call's buckets): ``with storage.locked() as now: ...``."""
        return self._held

    def count(self, key: str, now: float) -> int:
        counter = self._live_counter(key, now)
        return 0 if counter is None else counter.count

    def add(self, key: str, amount: int, ends: float, now: float) -> None:
        """Add ``amount`` (> 0) to a named window's counter, which expires at ``ends``."""
        self._incr(key, ends - now, amount, now)

    def give_back(self, key: str, amount: int, now: float) -> None:
        """Take ``amount`` from a counter that is still held, never below 0."""
        self._decr(key, amount, now)

    def entries(self, key: str, expiry: float, now: float) -> Sequence[float]:
        """The times of a moving window's entries of the last ``expiry`` seconds, oldest first."""
        window = self._windows.get(key)
        if window is None:
            return ()
        times, start = window.times, now - expiry
        if times and times[0] < start:
            del times[: bisect_left(times, start)]
        return times

    def push(self, key: str, expiry: float, amount: int, now: float) -> None:
        """Add ``amount`` entries at ``now`` to a moving window (after :meth:`entries` trimmed it)."""
        window = self._windows.get(key)
        if window is None:
            if amount <= 0:
                return
            window = self._windows[key] = _Window(expiry, now)
            heapq.heappush(self._queue, (window.queued, True, key))
        window.expiry = expiry
        if amount == 1:
            window.times.append(now)
        elif amount > 1:
            window.times.extend(repeat(now, amount))
