"""The buckets a governed call must fit in: which counter, which strategy, how much, what the call costs.

Which strategy, and why:

* **RPM: moving window.** Exact: never more than N calls in any 60 seconds, on memory and on Redis
  (an atomic Lua script there), so 100 threads against rpm=5 let exactly 5 through.
* **TPM: sliding window counter.** A moving window stores one entry per unit, which is fine for 60
  requests and absurd for 100,000 tokens; the sliding counter keeps two integers per bucket.
* **Budgets: fixed windows on the UTC calendar** (the day, the month), so a budget resets at midnight
  and a settlement always lands in the window it was charged to.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute

__all__ = ["Bucket", "BucketKind", "Reservation", "Strategy", "plan_buckets"]

Strategy = Literal["moving", "sliding", "fixed"]
BucketKind = Literal["rpm", "tpm", "budget"]


def _escape(value: str) -> str:
    # limits joins identifiers with "/"; escape so "a/b" + "c" never collides with "a" + "b/c".
    return quote(value, safe="")


@dataclass(frozen=True, slots=True)
class Bucket:
    """One limit one call must fit in: which counter, how much it allows, what the call costs."""

    kind: BucketKind
    strategy: Strategy
    item: RateLimitItem
    identifiers: tuple[str, ...]
    cost: int
    resets_at: float | None = None
    """For calendar budgets: when the window ends (epoch seconds)."""

    def with_cost(self, cost: int) -> Bucket:
        return Bucket(self.kind, self.strategy, self.item, self.identifiers, cost, self.resets_at)


@dataclass(slots=True)
class Reservation:
    """What one admitted call holds, so its token buckets can be settled against real usage."""

    buckets: tuple[Bucket, ...]
    reserved: int

    @property
    def token_buckets(self) -> tuple[Bucket, ...]:
        return tuple(bucket for bucket in self.buckets if bucket.kind != "rpm")


_ITEM_CACHE: dict[tuple[str, int], RateLimitItem] = {}


def _item(kind: str, amount: int) -> RateLimitItem:
    key = (kind, amount)
    item = _ITEM_CACHE.get(key)
    if item is None:
        if kind == "day":
            item = RateLimitItemPerDay(amount)
        elif kind == "month":
            item = RateLimitItemPerDay(amount, 32)
        else:
            item = RateLimitItemPerMinute(amount)
        _ITEM_CACHE[key] = item
    return item


def _calendar(period: Literal["day", "month"], now: float) -> tuple[str, float]:
    """The UTC window id and when it ends."""
    today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
    if period == "day":
        end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
        return today.isoformat(), end.timestamp()
    first_next = (today.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    end = dt.datetime.combine(first_next, dt.time(), dt.timezone.utc)
    return today.strftime("%Y-%m"), end.timestamp()


def plan_buckets(
    prefix: str,
    *,
    role: str,
    principal_id: str,
    rpm: int | None,
    scope_name: str = "",
    scope_rpm: int | None = None,
    tpm: int | None = None,
    budget_day: int | None = None,
    budget_month: int | None = None,
    pool_tpm: int | None = None,
    pool_budget_day: int | None = None,
    pool_budget_month: int | None = None,
    tokens: int = 0,
    now: float | None = None,
) -> tuple[Bucket, ...]:
    """The buckets one call must fit in, in the order they are hit."""
    prefix = _escape(prefix)
    who = (_escape(role), _escape(principal_id))
    plan: list[Bucket] = []
    if rpm is not None:
        plan.append(Bucket("rpm", "moving", _item("minute", rpm), (prefix, "rpm", *who), 1))
    if scope_rpm is not None:
        route_ids = (prefix, "rpm", *who, "route", _escape(scope_name))
        plan.append(Bucket("rpm", "moving", _item("minute", scope_rpm), route_ids, 1))
    if tokens <= 0:
        return tuple(plan)
    if tpm is not None:
        plan.append(Bucket("tpm", "sliding", _item("minute", tpm), (prefix, "tpm", *who), tokens))
    if pool_tpm is not None:
        plan.append(Bucket("tpm", "sliding", _item("minute", pool_tpm), (prefix, "pool-tpm", who[0]), tokens))
    clock = time.time() if now is None else now
    for period, amount, pool_amount in (
        ("day", budget_day, pool_budget_day),
        ("month", budget_month, pool_budget_month),
    ):
        if amount is None and pool_amount is None:
            continue
        window, ends = _calendar(period, clock)  # type: ignore[arg-type]
        if amount is not None:
            own = (prefix, "budget", period, window, *who)
            plan.append(Bucket("budget", "fixed", _item(period, amount), own, tokens, ends))
        if pool_amount is not None:
            pool = (prefix, "pool-budget", period, window, who[0])
            plan.append(Bucket("budget", "fixed", _item(period, pool_amount), pool, tokens, ends))
    return tuple(plan)
