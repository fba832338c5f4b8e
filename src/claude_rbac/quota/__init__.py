"""Requests per minute, tokens per minute and budgets: memory and Redis, one admission per call.

``redis`` is imported only when a Redis URI is used, so the core install governs calls on ``memory://``.
"""

from ._buckets import MICRO_USD, Bucket, BucketKind, Held, Reservation, SpendScope, Strategy, plan_buckets
from ._ledger import BatchSpendRecorder, SpendRecorder
from ._memory import LazyMemoryStorage
from ._quota import Quota, StorageFailure, Used
from ._report import SpendWindow, spend_windows
from ._spend_ledger import DAY_TTL, ROWS_PER_CALL, LedgerRow, RoleTotal, SpendLedger, SpendReport
from ._storage import async_storage_uri
from ._workers import WORKER_SOURCES, Workers, detect_workers, find_workers, warn_if_memory_in_many_workers

__all__ = [
    "MICRO_USD",
    "BatchSpendRecorder",
    "SpendRecorder",
    "SpendScope",
    "SpendWindow",
    "spend_windows",
    "Bucket",
    "BucketKind",
    "DAY_TTL",
    "ROWS_PER_CALL",
    "Held",
    "LazyMemoryStorage",
    "LedgerRow",
    "Quota",
    "Reservation",
    "RoleTotal",
    "SpendLedger",
    "SpendReport",
    "StorageFailure",
    "Strategy",
    "Used",
    "WORKER_SOURCES",
    "Workers",
    "async_storage_uri",
    "detect_workers",
    "find_workers",
    "plan_buckets",
    "warn_if_memory_in_many_workers",
]
