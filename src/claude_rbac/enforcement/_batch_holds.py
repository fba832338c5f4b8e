"""What a message batch holds in the spend windows, kept from its creation until its results are read.

A batch is reserved at creation (each item's worst case at batch rates) and answered hours later; its exact
cost is known only from its results. So when a governed client creates a batch whose reservation holds
dollars, :meth:`BatchHolds.keep` writes that reservation (the windows charged and the micro-dollars taken
from each, who created the batch, under which role and workspace, the request's dearest cache TTL) to the
quota's storage under the batch id, for :data:`~._batches.OWNERSHIP_SECONDS` like the batch's owner record.
When the results are read, :meth:`BatchHolds.take` removes the record and returns it in one atomic step
(a Lua script on Redis, a lock in memory): the one reader that gets it settles the batch, every other
reader (a second read, another worker reading at the same moment) gets ``None`` and settles nothing.

On ``memory://`` the records live in this object (the storage is this process's anyway); on Redis they are
strings beside the other keys, under the storage's own key prefix. Async clients reach Redis through a worker
thread, as :class:`~._batches.BatchOwners` does.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from .. import _forksafe as forksafe
from ..quota import MICRO_USD, Bucket, Held, Reservation
from ._batches import OWNERSHIP_SECONDS

__all__ = ["BatchHold", "BatchHolds"]

_TAKE: Final = "local v = redis.call('GET', KEYS[1]) if v then redis.call('DEL', KEYS[1]) end return v"
"""Read and delete in one step: only one reader ever gets a batch's record."""
_SWEEP_ABOVE: Final = 1024
"""Memory records beyond this many make the next write drop the expired ones."""


@dataclass(frozen=True, slots=True)
class BatchHold:
    """The dollars one batch holds, and whose they are."""

    principal_id: str
    role: str
    workspace: str | None
    cache_ttl: str | None
    """The dearest ``cache_control`` TTL of the create request: how cache writes a result does not split are priced."""
    reservation: Reservation
    """Only the spend (micro-dollar) windows of the batch's reservation."""

    @classmethod
    def of(
        cls, principal_id: str, role: str, workspace: str | None, cache_ttl: str | None, reservation: Reservation
    ) -> BatchHold | None:
        """The hold of a new batch, or ``None`` when its reservation holds no dollars."""
        held = tuple(each for each in reservation.held if each.bucket.unit == MICRO_USD and each.amount > 0)
        if not held:
            return None
        return cls(principal_id, role, workspace, cache_ttl, Reservation(held))

    def encode(self) -> str:
        windows = [
            [h.bucket.key, h.bucket.period, h.bucket.scope, h.bucket.limit, h.key, h.amount]
            for h in self.reservation.held
        ]
        record = {"p": self.principal_id, "r": self.role, "w": self.workspace, "t": self.cache_ttl, "h": windows}
        return json.dumps(record, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | bytes) -> BatchHold:
        """The hold a record describes; ``ValueError`` (or ``TypeError``/``KeyError``) when it is not one of ours."""
        record: Any = json.loads(text)
        held = []
        for key, period, scope, limit, window, amount in record["h"]:
            if period not in ("day", "month") or not all(isinstance(v, int) for v in (limit, amount)):
                raise ValueError("not a spend window")
            bucket = Bucket("spend", "calendar", str(key), limit, amount, MICRO_USD, period, str(scope))
            held.append(Held(bucket, str(window), amount))
        workspace, ttl = record["w"], record["t"]
        return cls(
            str(record["p"]),
            str(record["r"]),
            workspace if isinstance(workspace, str) else None,
            ttl if isinstance(ttl, str) else None,
            Reservation(tuple(held)),
        )


class BatchHolds:
    """The batch holds of one :class:`~claude_rbac.quota.Quota`'s storage. Storage errors propagate."""

    def __init__(self, storage: Any, *, key_prefix: str, in_process: bool) -> None:
        self._storage = storage
        self._prefix = quote(key_prefix, safe="")
        self._in_process = in_process
        self._lock = threading.Lock()
        self._memory: dict[str, tuple[float, str]] = {}
        forksafe.register(self)  # a worker forked mid-write must not inherit the lock held

    def key(self, batch_id: str) -> str:
        return f"{self._prefix}/batch-hold/{quote(batch_id, safe='')}"

    def keep(self, batch_id: str, hold: BatchHold) -> None:
        """Record what ``batch_id`` holds (replacing nothing: a batch id is new when it is created)."""
        key, value = self.key(batch_id), hold.encode()
        if self._in_process:
            now = time.time()
            with self._lock:
                if len(self._memory) > _SWEEP_ABOVE:
                    self._memory = {k: v for k, v in self._memory.items() if v[0] > now}
                self._memory[key] = (now + OWNERSHIP_SECONDS, value)
            return
        self._storage.get_connection().set(self._storage.prefixed_key(key), value, ex=OWNERSHIP_SECONDS)

    def peek(self, batch_id: str) -> BatchHold | None:
        """What ``batch_id`` holds, left in place (``None``: nothing, or settled already)."""
        key = self.key(batch_id)
        if self._in_process:
            with self._lock:
                found = self._memory.get(key)
            text = found[1] if found is not None and found[0] > time.time() else None
        else:
            text = self._storage.get_connection().get(self._storage.prefixed_key(key))
        return None if text is None else BatchHold.decode(text)

    def take(self, batch_id: str) -> BatchHold | None:
        """Remove and return what ``batch_id`` holds: the first caller gets it, every later one ``None``."""
        key = self.key(batch_id)
        if self._in_process:
            with self._lock:
                found = self._memory.pop(key, None)
            text = found[1] if found is not None and found[0] > time.time() else None
        else:
            text = self._storage.get_connection().eval(_TAKE, 1, self._storage.prefixed_key(key))
        return None if text is None else BatchHold.decode(text)

    async def akeep(self, batch_id: str, hold: BatchHold) -> None:
        if self._in_process:
            self.keep(batch_id, hold)
        else:
            await asyncio.to_thread(self.keep, batch_id, hold)

    async def apeek(self, batch_id: str) -> BatchHold | None:
        if self._in_process:
            return self.peek(batch_id)
        return await asyncio.to_thread(self.peek, batch_id)

    async def atake(self, batch_id: str) -> BatchHold | None:
        if self._in_process:
            return self.take(batch_id)
        return await asyncio.to_thread(self.take, batch_id)
