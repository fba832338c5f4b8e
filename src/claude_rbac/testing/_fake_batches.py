"""Message batches that end the moment they are created, each item answered with its own usage."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["BatchOutcome", "BatchStore", "batch_outcome"]

BatchOutcome = Literal["errored", "expired", "canceled"]
"""How a batch item ends when it does not succeed."""

Answer = Callable[[Mapping[str, Any], "str | None"], dict[str, Any]]
"""Answers one item: its ``params`` and its ``custom_id`` -> its ``result`` (``{"type": "succeeded", ...}``)."""


def batch_outcome(outcome: BatchOutcome) -> dict[str, Any]:
    """The ``result`` of an item that did not succeed, as the API writes it."""
    if outcome == "errored":
        error = {"type": "invalid_request_error", "message": "Scripted batch item error."}
        return {"type": "errored", "error": {"type": "error", "error": error}}
    return {"type": outcome}


@dataclass
class _Batch:
    batch: dict[str, Any]
    results: list[dict[str, Any]]


class BatchStore:
    """The batches one FakeClaude holds. Items are answered at creation, so results never change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches: dict[str, _Batch] = {}

    def clear(self) -> None:
        with self._lock:
            self._batches.clear()

    def create(self, body: Mapping[str, Any], base_url: str, answer: Answer) -> dict[str, Any]:
        batch_id = f"msgbatch_{uuid.uuid4().hex[:24]}"
        items = [item for item in body.get("requests") or [] if isinstance(item, Mapping)]
        results: list[dict[str, Any]] = []
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for item in items:
            params = item.get("params")
            params = params if isinstance(params, Mapping) else {}
            custom_id = item.get("custom_id")
            result = answer(params, custom_id if isinstance(custom_id, str) else None)
            counts[str(result["type"])] += 1
            results.append({"custom_id": custom_id, "result": result})
        batch = {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended",
            "request_counts": counts,
            "ended_at": "2026-01-01T00:00:00Z",
            "created_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-01-02T00:00:00Z",
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{base_url}/v1/messages/batches/{batch_id}/results",
        }
        with self._lock:
            self._batches[batch_id] = _Batch(batch, results)
        return batch

    def get(self, batch_id: str) -> dict[str, Any] | None:
        with self._lock:
            stored = self._batches.get(batch_id)
        return None if stored is None else stored.batch

    def results(self, batch_id: str) -> list[dict[str, Any]] | None:
        with self._lock:
            stored = self._batches.get(batch_id)
        return None if stored is None else stored.results

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return [stored.batch for stored in self._batches.values()]
