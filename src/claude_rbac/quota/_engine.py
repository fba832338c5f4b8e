"""The rules of the buckets, written once for both storages: what one call checks, takes and gives back.

An admission is all or nothing: the storage checks every bucket of the call and takes from all of them or
from none (memory under one lock, Redis in one Lua script), so a refusal leaves nothing to undo. What a
storage reports (:class:`State`, per bucket, before the call) is turned into answers here, the same way for
both: the retry-after of a refusal and the remaining of ``remaining()``.

Settling a reservation (:func:`settlements_for`):

* unused tokens go back to the window that was **charged**, never below zero, and never to a window that
  has ended (giving a minute-59 reservation back to minute 60 would make room twice);
* usage beyond the reservation is **always recorded**, in the window current when the usage became known,
  however full it is, so the next call is refused (input the estimate cannot see: a PDF by URL, a
  ``file_id``, server-tool results).

Time is integer milliseconds for the sliding weight (``previous x (width - elapsed) + current x width``
compared with ``limit x width``), so memory and Redis (whose Lua numbers are doubles) compute the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ._buckets import MINUTE, Bucket, Held, Reservation, minute_of

__all__ = ["Check", "Settlement", "State", "Verdict", "checks_for", "remaining", "retry_after", "settlements_for"]

WIDTH_MS = MINUTE * 1000
GRACE = 1
"""Seconds a Redis key outlives the last moment it is read (clock skew between clients and server)."""


@dataclass(frozen=True, slots=True)
class Check:
    """One bucket of an admission, with the windows it reads at ``now``."""

    bucket: Bucket
    key: str
    """moving: the entries' key; sliding: the current minute's; calendar: the current window's."""
    previous: str = ""
    """sliding: the previous minute's key."""
    elapsed_ms: int = 0
    """sliding: milliseconds into the current minute."""
    ends: float = 0.0
    """sliding and calendar: when the charged window stops being read."""


@dataclass(frozen=True, slots=True)
class Settlement:
    """A change owed to one counter: ``amount`` > 0 adds (always), < 0 gives back (to what is there, not below 0).

    ``entry`` marks the removal of moving-window entries taken at that time (a cluster's compensation).
    """

    group: str
    key: str
    amount: int
    ends: float = 0.0
    entry: str = ""

    @property
    def op(self) -> Literal["add", "give", "drop"]:
        if self.entry:
            return "drop"
        return "add" if self.amount > 0 else "give"


@dataclass(frozen=True, slots=True)
class State:
    """What one bucket held before the call: the counts, and for a moving window the entries that matter."""

    count: int
    """moving: the entries in the window, read for ``remaining()`` only (an admission reads one entry)."""
    previous: int = 0
    oldest: float | None = None
    """moving, for ``remaining()``: the oldest entry still in the window."""
    leaving: float | None = None
    """moving, for an admission: the entry whose leaving lets the cost fit (None when it fits, or never can)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    admitted: bool
    refused: int | None
    """The index of the first bucket that refused."""
    states: tuple[State, ...]


def ttl(ends: float, now: float) -> int:
    """Seconds a Redis key must live: until its window stops being read, plus a little."""
    return max(math.ceil(ends - now), 0) + GRACE


def checks_for(buckets: Sequence[Bucket], now: float) -> list[Check]:
    checks = []
    for bucket in buckets:
        if bucket.strategy == "moving":
            checks.append(Check(bucket, bucket.key))
            continue
        key, ends = bucket.window(now)
        if bucket.strategy == "sliding":
            minute = minute_of(now)
            previous = f"{bucket.key}/{minute - 1}"
            checks.append(Check(bucket, key, previous, math.floor(now * 1000) - minute * WIDTH_MS, ends))
        else:
            checks.append(Check(bucket, key, ends=ends))
    return checks


def fits(check: Check, state: State) -> bool:
    """The admission rule (``buckets.lua`` applies the same one on Redis)."""
    bucket = check.bucket
    if bucket.strategy == "moving":
        return bucket.cost <= bucket.limit and state.leaving is None and state.count + bucket.cost <= bucket.limit
    if bucket.strategy == "sliding":
        weighted = state.previous * (WIDTH_MS - check.elapsed_ms) + (state.count + bucket.cost) * WIDTH_MS
        return weighted <= bucket.limit * WIDTH_MS
    return state.count + bucket.cost <= bucket.limit


def retry_after(check: Check, state: State, now: float) -> float:
    """Seconds until the refused bucket could admit the same cost (60 when it never can)."""
    bucket, cost = check.bucket, check.bucket.cost
    if cost > bucket.limit:
        return float(MINUTE)
    if bucket.strategy == "moving":
        return max(state.leaving + MINUTE - now, 0.0) if state.leaving is not None else 0.0
    if bucket.strategy == "calendar":
        return max(check.ends - now, 0.0)
    elapsed, room = check.elapsed_ms, bucket.limit - cost
    if state.count <= room:  # the previous window's weight must fall far enough within this minute
        until = WIDTH_MS - (room - state.count) * WIDTH_MS / state.previous if state.previous else elapsed
        return max(until - elapsed, 0) / 1000
    # this minute's count must become the previous one and lose weight in the next minute
    return (WIDTH_MS - elapsed + WIDTH_MS - room * WIDTH_MS / state.count) / 1000


def remaining(check: Check, state: State, now: float) -> tuple[int, float]:
    """(units the bucket can still admit, when it is next empty or reset)."""
    bucket = check.bucket
    if bucket.strategy == "moving":
        reset = state.oldest + MINUTE if state.oldest is not None else now
        return max(bucket.limit - state.count, 0), reset
    if bucket.strategy == "calendar":
        return max(bucket.limit - state.count, 0), check.ends
    weighted = state.previous * (WIDTH_MS - check.elapsed_ms) + state.count * WIDTH_MS
    left = (bucket.limit * WIDTH_MS - weighted) // WIDTH_MS
    minute_ends = now - check.elapsed_ms / 1000 + MINUTE
    reset = minute_ends + MINUTE if state.count else minute_ends if state.previous else now
    return max(left, 0), reset


def reservation_of(checks: Sequence[Check]) -> Reservation:
    return Reservation(tuple(Held(c.bucket, c.key, c.bucket.cost) for c in checks if c.bucket.strategy != "moving"))


def settlements_for(reservation: Reservation, used: int | Mapping[str, int], now: float) -> list[Settlement]:
    """What settling ``reservation`` owes the counters, given what the call used (per unit; an int is tokens).

    A unit missing from ``used`` keeps its reservation (over-counted, never under-counted).
    """
    usage = {"tokens": used} if isinstance(used, int) else used
    owed = []
    for held in reservation.held:
        bucket = held.bucket
        spent = usage.get(bucket.unit)
        if spent is None or spent == held.amount:
            continue
        if spent < held.amount:
            owed.append(Settlement(bucket.group, held.key, spent - held.amount))
        else:
            key, ends = bucket.window(now)
            owed.append(Settlement(bucket.group, key, spent - held.amount, ends))
    return owed
