"""The buckets on ``memory://``: the rules of ``_engine.py`` applied under the storage's one lock.

No thread, no queue: a settlement is applied inline (a dict update under the lock), and the storage frees
idle keys on the request path in bounded steps (see ``_memory.py``). The async client calls the same code
from the event loop; nothing in it waits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._buckets import MINUTE, Bucket, Reservation
from ._engine import Check, State, Verdict, checks_for, fits, settlements_for
from ._memory import LazyMemoryStorage

__all__ = ["MemoryBuckets"]


class MemoryBuckets:
    def __init__(self, storage: LazyMemoryStorage) -> None:
        self.storage = storage

    def run(self, buckets: Sequence[Bucket], *, take: bool) -> tuple[float, list[Check], Verdict]:
        """Check every bucket at one instant; with ``take``, take from all of them if all admit."""
        storage = self.storage
        with storage.locked() as now:
            checks = checks_for(buckets, now)
            states = tuple([self._state(check, now, take=take) for check in checks])
            refused = None
            for index, check in enumerate(checks):
                if not fits(check, states[index]):
                    refused = index
                    break
            if take and refused is None:
                for check in checks:
                    bucket = check.bucket
                    if bucket.strategy == "moving":
                        storage.push(check.key, MINUTE, bucket.cost, now)
                    elif bucket.cost > 0:
                        storage.add(check.key, bucket.cost, check.ends, now)
        return now, checks, Verdict(refused is None, refused, states)

    def _state(self, check: Check, now: float, *, take: bool) -> State:
        storage, bucket = self.storage, check.bucket
        if bucket.strategy != "moving":
            previous = storage.count(check.previous, now) if check.previous else 0
            return State(storage.count(check.key, now), previous)
        entries = storage.entries(check.key, MINUTE, now)  # oldest first
        if take:  # what Redis reads: the entry whose leaving lets the cost fit, if it is still inside
            at = len(entries) - max(bucket.limit - bucket.cost, 0) - 1
            leaving = entries[at] if bucket.cost <= bucket.limit and at >= 0 else None
            return State(0, leaving=leaving)
        count = min(len(entries), bucket.limit + 1)  # what Redis reads: the newest limit + 1
        return State(count, oldest=entries[-count] if count else None)

    def settle(self, reservation: Reservation, used: Any) -> None:
        storage = self.storage
        with storage.locked() as now:
            for owed in settlements_for(reservation, used, now):
                if owed.amount > 0:
                    storage.add(owed.key, owed.amount, owed.ends, now)
                else:
                    storage.give_back(owed.key, -owed.amount, now)
