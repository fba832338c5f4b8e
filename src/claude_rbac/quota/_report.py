"""What a principal has spent: each spend window that applies to them, in exact dollars."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from ..policy import dollars_of
from ._buckets import Bucket

__all__ = ["SpendWindow", "spend_windows"]


@dataclass(frozen=True, slots=True)
class SpendWindow:
    """One spend limit that applies to a principal, and where it stands now.

    ``scope``: whose limit it is: ``principal`` (the role's limit per principal), ``route`` (a route scope's),
    ``pool`` (shared by the role's principals) or ``workspace`` (shared by every role of the workspace);
    ``period``: ``day`` or ``month`` (UTC calendar windows). ``used`` is what the window holds: settled costs
    plus the worst cases of calls in flight; it can pass ``limit`` (a call's usage beyond its reservation is
    always recorded), ``remaining`` never goes below 0.
    """

    scope: str
    period: str
    limit: Decimal
    used: Decimal
    remaining: Decimal
    resets_at: dt.datetime


def spend_windows(rows: Iterable[tuple[Bucket, int, float]]) -> list[SpendWindow]:
    """(bucket, count, window end) rows of spend buckets as :class:`SpendWindow` values."""
    return [
        SpendWindow(
            bucket.scope,
            bucket.period,
            dollars_of(bucket.limit),
            dollars_of(count),
            dollars_of(max(bucket.limit - count, 0)),
            dt.datetime.fromtimestamp(ends, dt.timezone.utc),
        )
        for bucket, count, ends in rows
    ]
