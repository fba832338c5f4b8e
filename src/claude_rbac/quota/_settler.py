"""Settling token reservations off the request path.

After a call, the difference between what was reserved and what was used goes back to the
buckets. On Redis that is a write, and the call has already paid its one round trip; so settlements
go to one background thread per process, which drains its queue into one pipeline per batch.
Nothing is lost by a slow settlement but a little headroom for a moment: a reservation is always
the most a call can cost.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Settler"]

log = logging.getLogger("claude_rbac")


class Settler:
    """A lazily started daemon thread that runs queued settlements in batches. Fork-safe."""

    def __init__(self, run: Callable[[Sequence[Any]], object]) -> None:
        self._run = run
        self._lock = threading.Lock()
        self._queue: queue.Queue[list[Any]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def submit(self, items: list[Any]) -> None:
        with self._lock:
            if self._pid != os.getpid():
                # A forked worker inherits the queue object but not the thread: start afresh.
                self._queue = queue.Queue()
                self._thread = None
                self._pid = os.getpid()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="claude_rbac-settler", daemon=True)
                self._thread.start()
        self._queue.put(items)

    def _loop(self) -> None:
        while True:
            batch = self._queue.get()
            taken = 1
            while True:
                try:
                    batch = batch + self._queue.get_nowait()
                    taken += 1
                except queue.Empty:
                    break
            try:
                self._run(batch)
            except Exception as exc:
                log.warning(
                    "claude_rbac: could not settle token usage (%s); the reservation stands", type(exc).__name__
                )
            finally:
                for _ in range(taken):
                    self._queue.task_done()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far has run; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True
