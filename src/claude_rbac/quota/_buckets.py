"""The buckets a governed call must fit in: which counter, how it counts, its limit and unit, what the call costs.

How each strategy counts (the same on memory and on Redis; ``_engine.py`` holds the rules):

* **moving** (RPM): exact. The times of the units admitted in the last 60 seconds; a call fits when they
  and its cost are at most the limit, so 100 threads against rpm=5 let exactly 5 through.
* **sliding** (TPM): a sliding counter over explicit minute windows ``<key>/<minute>``: the weighted
  count is ``previous x (1 - elapsed/60) + current``. Two integers per bucket, where a moving window
  would keep an entry per token; and since each window is named, a settlement lands in the one it means.
* **calendar** (budgets): fixed windows on the UTC calendar ``<key>/<2025-01-31>`` or ``<key>/<2025-01>``,
  reset at midnight UTC (on the first of the month).

A bucket counts one *unit*: ``requests`` (RPM), ``tokens`` (TPM, budgets) and ``micro_usd`` (spend, whole
micro-dollars): the engine never reads a bucket's kind or unit, so spend windows per principal, route, role
pool or workspace are more buckets, and a :class:`Reservation` holds what it took from each bucket.

Keys start with a Redis Cluster hash tag, ``{<prefix>/principal/<role>/<id>}``, ``{<prefix>/pool/<role>}``
or ``{<prefix>/workspace/<name>}``: one script call per tag there. Every id is escaped, so ``a/b`` + ``c``
never meets ``a`` + ``b/c`` and no id can close a brace.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

__all__ = [
    "MICRO_USD",
    "Bucket",
    "BucketKind",
    "Held",
    "Period",
    "Reservation",
    "SpendScope",
    "Strategy",
    "plan_buckets",
]

Strategy = Literal["moving", "sliding", "calendar"]
BucketKind = str
"""What a refusal says: ``rpm``, ``tpm``, ``budget``, ``spend``; the engine never reads it."""
MICRO_USD = "micro_usd"
"""The unit of spend buckets: whole micro-dollars."""
SpendScope = Literal["principal", "route", "pool", "workspace"]
Period = Literal["minute", "day", "month"]
MINUTE = 60


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch
"""What ``quote(value, safe="")`` leaves as it is: most ids, role and prefix names (checked ~10x faster than quoted)."""


def _escape(value: str) -> str:
    return value if _PLAIN(value) else quote(value, safe="")


@dataclass(frozen=True, slots=True)
class Bucket:
    """One limit a call must fit in: its counter, how it counts, how much it allows, what the call costs."""

    kind: BucketKind
    strategy: Strategy
    key: str
    """The counter's name without its window, starting with its hash tag (``{...}``)."""
    limit: int
    cost: int
    unit: str = "tokens"
    period: Period = "minute"
    scope: str = ""
    """Whose limit a spend bucket is: ``principal``, ``route``, ``pool`` or ``workspace`` (a refusal names it)."""

    @property
    def group(self) -> str:
        """The hash tag: buckets of one group live on one Redis Cluster slot, so one script can take them."""
        return self.key[: self.key.index("}") + 1]

    def with_cost(self, cost: int) -> Bucket:
        """This bucket at another cost: made on every call, so by the constructor (``replace`` takes twice as long)."""
        return Bucket(self.kind, self.strategy, self.key, self.limit, cost, self.unit, self.period, self.scope)

    def window(self, now: float) -> tuple[str, float]:
        """(the key of the window that counts at ``now``, when that window stops being read) for counters."""
        if self.period == "minute":
            minute = minute_of(now)
            return f"{self.key}/{minute}", (minute + 2) * MINUTE  # read as current, then as previous
        window, ends = calendar_window(self.period, now)
        return f"{self.key}/{window}", ends


@dataclass(frozen=True, slots=True)
class Held:
    """What an admitted call took from one counter bucket: the window charged and how much."""

    bucket: Bucket
    key: str
    amount: int


@dataclass(slots=True)
class Reservation:
    """What one admitted call holds in its counter buckets, to be settled against what it really used."""

    held: tuple[Held, ...]

    @property
    def reserved(self) -> int:
        """The tokens reserved (every token bucket of a call reserves the same amount)."""
        return self.reserved_in("tokens")

    def reserved_in(self, unit: str) -> int:
        amount = 0
        for held in self.held:  # a loop: asked on every call, most often of an empty reservation
            if held.bucket.unit == unit and held.amount > amount:
                amount = held.amount
        return amount


def minute_of(now: float) -> int:
    """The minute ``now`` falls in, from whole milliseconds (as the sliding weight is computed)."""
    return math.floor(now * 1000) // (MINUTE * 1000)


_CALENDAR: dict[str, tuple[float, float, str]] = {}
"""The last window seen per period: (start, end, id), so most calls skip the datetime arithmetic."""


def calendar_window(period: Period, now: float) -> tuple[str, float]:
    """The UTC window id (``2025-01-31`` or ``2025-01``) and when it ends (epoch seconds)."""
    cached = _CALENDAR.get(period)
    if cached is not None and cached[0] <= now < cached[1]:
        return cached[2], cached[1]
    today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
    if period == "day":
        start = dt.datetime.combine(today, dt.time(), dt.timezone.utc)
        end = start + dt.timedelta(days=1)
        window = today.isoformat()
    else:
        first = today.replace(day=1)
        start = dt.datetime.combine(first, dt.time(), dt.timezone.utc)
        end = dt.datetime.combine((first + dt.timedelta(days=32)).replace(day=1), dt.time(), dt.timezone.utc)
        window = today.strftime("%Y-%m")
    _CALENDAR[period] = (start.timestamp(), end.timestamp(), window)
    return window, end.timestamp()


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
    spend: Mapping[SpendScope, tuple[int | None, int | None]] | None = None,
    workspace: str = "",
    micro_usd: int = 0,
) -> tuple[Bucket, ...]:
    """The buckets one call must fit in, in the order they are checked (a refusal names the first that is full).

    ``spend``: the (day, month) limits in micro-dollars of each scope that has one; ``micro_usd``: what the call
    reserves against them (no spend bucket without it).
    """
    own = f"{{{_escape(prefix)}/principal/{_escape(role)}/{_escape(principal_id)}}}"
    pool = f"{{{_escape(prefix)}/pool/{_escape(role)}}}"
    plan = _token_buckets(
        own,
        pool,
        rpm,
        scope_name,
        scope_rpm,
        tpm,
        pool_tpm,
        tokens,
        (budget_day, budget_month, pool_budget_day, pool_budget_month),
    )
    if micro_usd > 0 and spend:
        keys = {
            "principal": f"{own}/spend",
            "route": f"{own}/spend/route/{_escape(scope_name)}",
            "pool": f"{pool}/spend",
            "workspace": f"{{{_escape(prefix)}/workspace/{_escape(workspace)}}}/spend",
        }
        for scope, (day, month) in spend.items():
            periods: tuple[tuple[Period, int | None], ...] = (("day", day), ("month", month))
            for period, limit in periods:
                if limit is not None:
                    key = f"{keys[scope]}/{period}"
                    plan.append(Bucket("spend", "calendar", key, limit, micro_usd, MICRO_USD, period, scope))
    return tuple(plan)


def _token_buckets(
    own: str,
    pool: str,
    rpm: int | None,
    scope_name: str,
    scope_rpm: int | None,
    tpm: int | None,
    pool_tpm: int | None,
    tokens: int,
    budgets: tuple[int | None, int | None, int | None, int | None],
) -> list[Bucket]:
    budget_day, budget_month, pool_budget_day, pool_budget_month = budgets
    plan: list[Bucket] = []
    if rpm is not None:
        plan.append(Bucket("rpm", "moving", f"{own}/rpm", rpm, 1, "requests"))
    if scope_rpm is not None:
        plan.append(Bucket("rpm", "moving", f"{own}/rpm/route/{_escape(scope_name)}", scope_rpm, 1, "requests"))
    if tokens <= 0:
        return plan
    if tpm is not None:
        plan.append(Bucket("tpm", "sliding", f"{own}/tpm", tpm, tokens))
    if pool_tpm is not None:
        plan.append(Bucket("tpm", "sliding", f"{pool}/tpm", pool_tpm, tokens))
    calendars: tuple[tuple[Period, int | None, int | None], ...] = (
        ("day", budget_day, pool_budget_day),
        ("month", budget_month, pool_budget_month),
    )
    for period, amount, pool_amount in calendars:
        if amount is not None:
            plan.append(Bucket("budget", "calendar", f"{own}/budget/{period}", amount, tokens, period=period))
        if pool_amount is not None:
            plan.append(Bucket("budget", "calendar", f"{pool}/budget/{period}", pool_amount, tokens, period=period))
    return plan
