"""Who created which message batch, kept in the limits storage so that every worker knows.

A batch's results are its creator's data: a batch id is not a secret (it shows in logs and URLs), so
holding one must not be enough to read another user's results or cancel their batch. When a governed
client creates a batch, the governor reads the new batch's id from the answer and :meth:`BatchOwners.bind`
records (batch id, principal id) in the quota's storage; retrieve, results and cancel then ask
:meth:`BatchOwners.owns` first, and another principal is refused (403 ``batch_not_owned``) before anything
is sent. A role with ``batches = "all"`` in the policy skips the question.

The record is one counter per (batch, creator), written with the ``limits`` storage's own ``incr`` and read
with its ``get``: in process memory on ``memory://``, in Redis (shared by every worker) on ``redis://``.
It expires after :data:`OWNERSHIP_SECONDS`, longer than Anthropic keeps a batch's results (29 days).
Async clients reach a network storage through a worker thread, never blocking the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Final
from urllib.parse import quote

from limits.storage import Storage

__all__ = ["OWNERSHIP_SECONDS", "BatchOwners"]

OWNERSHIP_SECONDS: Final = 30 * 24 * 3600


class BatchOwners:
    """The (batch id, creator) records of one :class:`~claude_rbac.quota.Quota`'s storage."""

    def __init__(self, storage: Storage, *, key_prefix: str, in_process: bool) -> None:
        self._storage = storage
        self._prefix = quote(key_prefix, safe="")
        self._in_process = in_process

    def key(self, batch_id: str, principal_id: str) -> str:
        """The storage key of one record; both ids escaped, so no pair of ids can make another pair's key."""
        return f"{self._prefix}/batch-owner/{quote(batch_id, safe='')}/{quote(principal_id, safe='')}"

    def bind(self, batch_id: str, principal_id: str) -> None:
        """Record that ``principal_id`` created ``batch_id``. Storage errors propagate."""
        self._storage.incr(self.key(batch_id, principal_id), OWNERSHIP_SECONDS)

    def owns(self, batch_id: str, principal_id: str) -> bool:
        """Whether ``principal_id`` created ``batch_id`` (through a governed client). Storage errors propagate."""
        return self._storage.get(self.key(batch_id, principal_id)) > 0

    async def abind(self, batch_id: str, principal_id: str) -> None:
        if self._in_process:
            self.bind(batch_id, principal_id)
        else:
            await asyncio.to_thread(self.bind, batch_id, principal_id)

    async def aowns(self, batch_id: str, principal_id: str) -> bool:
        if self._in_process:
            return self.owns(batch_id, principal_id)
        return await asyncio.to_thread(self.owns, batch_id, principal_id)
