"""Requests per minute, tokens per minute and budgets on the ``limits`` package: memory and Redis.

``redis`` is imported only when a Redis URI is used, so the core install governs calls on ``memory://``.
"""

from ._buckets import Bucket, BucketKind, Reservation, Strategy, plan_buckets
from ._memory import LazyMemoryStorage
from ._quota import Quota, StorageFailure
from ._storage import async_storage_uri
from ._workers import WORKER_SOURCES, Workers, detect_workers, find_workers, warn_if_memory_in_many_workers

__all__ = [
    "Bucket",
    "LazyMemoryStorage",
    "BucketKind",
    "Quota",
    "Reservation",
    "StorageFailure",
    "Strategy",
    "WORKER_SOURCES",
    "Workers",
    "async_storage_uri",
    "detect_workers",
    "find_workers",
    "plan_buckets",
    "warn_if_memory_in_many_workers",
]
