"""Which governed operation an SDK request is, from its method and URL; anything else is not governed.

The governed client speaks the Messages API only: create (and stream), count_tokens, and batches
(create, and retrieve/results/cancel of one batch by id). Listing and deleting batches, models, files
and every other endpoint have no decision in the policy, so the governor refuses them.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

__all__ = ["BATCH_READS", "batch_id_of", "operation_of"]

_BATCH_ITEM: Final = re.compile(r"/v1/messages/batches/([A-Za-z0-9_-]{1,128})(/results|/cancel)?")
"""One batch by id. Ids are ``msgbatch_`` and letters; anything else (``..``, ``%2e``) is not a batch."""

BATCH_READS: Final = frozenset({"messages.batches.retrieve", "messages.batches.results", "messages.batches.cancel"})
"""The operations on one existing batch: only its creator (or a role with ``batches = "all"``) may do them."""

# (method, path) -> operation name. Anything else is denied: the client governs the Messages API only.
_OPERATIONS: Final = {
    ("POST", "/v1/messages"): "messages.create",
    ("POST", "/v1/messages/count_tokens"): "messages.count_tokens",
    ("POST", "/v1/messages/batches"): "messages.batches.create",
}
_CACHE_SIZE: Final = 1024
_OPERATION_CACHE: dict[tuple[str, str], str | None] = {}


def operation_of(method: str, url: str) -> str | None:
    """The governed operation a request is, or ``None`` for an endpoint the policy does not know."""
    key = (method, url)
    if key in _OPERATION_CACHE:
        return _OPERATION_CACHE[key]
    operation = _classify(method, url)
    if len(_OPERATION_CACHE) >= _CACHE_SIZE:  # batch ids make URLs unbounded
        _OPERATION_CACHE.clear()
    _OPERATION_CACHE[key] = operation
    return operation


def batch_id_of(url: str) -> str | None:
    """The batch id in a retrieve/results/cancel URL, else ``None``."""
    match = _BATCH_ITEM.fullmatch(_path(url))
    return match.group(1) if match is not None else None


def _path(url: str) -> str:
    return urlsplit(url).path.rstrip("/") or "/"


def _classify(method: str, url: str) -> str | None:
    path = _path(url)
    method = method.upper()
    operation = _OPERATIONS.get((method, path))
    if operation is not None:
        return operation
    match = _BATCH_ITEM.fullmatch(path)
    if match is None:
        return None
    suffix = match.group(2)
    if method == "GET" and suffix is None:
        return "messages.batches.retrieve"
    if method == "GET" and suffix == "/results":
        return "messages.batches.results"
    if method == "POST" and suffix == "/cancel":
        return "messages.batches.cancel"
    return None
