"""A bounded memo that stops keeping first sightings while it thrashes.

Per-principal memos (governed clients, route decisions) serve an app with a few thousand active users
from memory. With more active users than they hold, every lookup misses, and keeping each new entry only
until the next bulk clear costs more than it saves: the entries live long enough to be promoted to the
garbage collector's older generations, whose collections then walk them all (with 100,000 active users,
more than the misses cost). So when a fill served fewer hits than misses, the memo keeps only keys seen
before, until the next fill says otherwise; the keys seen once are remembered as hashes (ints, which the
collector does not track).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["ThrashAwareMemo"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ThrashAwareMemo(Generic[K, V]):
    """``get``/``put`` like a dict of at most ``size`` entries, cleared in bulk when full.

    Reads take no lock (a dict read is atomic); callers that put from several threads hold their own lock
    around ``put`` if they need one (the counts only steer what is kept, so a race costs nothing else).
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: dict[K, V] = {}
        self._hits = self._misses = 0
        self._thrashing = False
        self._seen: dict[int, None] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._hits += 1
        return value

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` under ``key``, unless the memo thrashes and ``key`` was not seen recently."""
        if self._thrashing:
            seen = hash(key)
            if seen not in self._seen:
                if len(self._seen) >= 4 * self._size:
                    self._seen.clear()
                self._seen[seen] = None
                return
        if len(self._entries) >= self._size:
            self._thrashing = self._hits < self._misses
            self._hits = self._misses = 0
            self._entries = {}
        self._misses += 1
        self._entries[key] = value

    def retain(self, keep: Callable[[K], bool]) -> None:
        """Drop the entries whose key ``keep`` refuses."""
        self._entries = {key: value for key, value in self._entries.items() if keep(key)}
