"""A bucket's unit is the caller's: spend in integer micro-dollars is one more bucket, not a new engine.

A spend window per workspace sits next to a call's token buckets: the admission takes both at once, the
reservation holds what it took from each (they differ), and a settlement moves only the units it names.
"""

from __future__ import annotations

import pytest

from claude_rbac import RateLimited
from claude_rbac.quota import Bucket, Quota

DOLLAR = 1_000_000


def spend(prefix: str, cost: int, limit: int = 5 * DOLLAR) -> Bucket:
    """A day's spend for the workspace "research", as the spend work will add it (its own hash tag)."""
    return Bucket("spend", "calendar", f"{{{prefix}/workspace/research}}/spend/day", limit, cost, "microdollars", "day")


def call(quota: Quota, tokens: int, dollars: float) -> tuple[Bucket, ...]:
    tpm = quota.buckets(role="user", principal_id="alice", rpm=100, tpm=100_000, budget_day=10**6, tokens=tokens)
    return (*tpm, spend(quota.key_prefix, int(dollars * DOLLAR)))


def remaining_spend(quota: Quota) -> int:
    quota.flush()
    ((_, left, _),) = quota.remaining([spend(quota.key_prefix, 0)])
    return left


def test_a_spend_window_next_to_the_token_buckets(storage: str, key_prefix: str) -> None:
    quota = Quota(storage, key_prefix=key_prefix)
    reservation = quota.acquire(call(quota, 2_000, 1.5))
    assert reservation.reserved == 2_000
    assert reservation.reserved_in("microdollars") == 1_500_000
    assert remaining_spend(quota) == 3_500_000

    quota.settle(reservation, 300)  # tokens only: the spend reservation stands
    assert remaining_spend(quota) == 3_500_000
    quota.settle(reservation, {"microdollars": 400_000})  # what the call cost: 1.1 dollars go back
    assert remaining_spend(quota) == 4_600_000
    quota.close()


def test_a_spend_refusal_takes_nothing_else(storage: str, key_prefix: str) -> None:
    quota = Quota(storage, key_prefix=key_prefix)
    quota.acquire(call(quota, 1_000, 4.0))
    with pytest.raises(RateLimited) as refused:
        quota.acquire(call(quota, 1_000, 2.0))
    assert refused.value.reason == "spend_limit_exceeded"
    tokens = quota.buckets(role="user", principal_id="alice", rpm=100, tpm=100_000, tokens=1)
    assert [left for _, left, _ in quota.remaining(tokens)] == [99, 99_000]  # the refused call took nothing
    quota.close()


def test_spend_beyond_the_reservation_is_recorded(storage: str, key_prefix: str) -> None:
    quota = Quota(storage, key_prefix=key_prefix)
    reservation = quota.acquire(call(quota, 1_000, 0.5))
    quota.settle(reservation, {"microdollars": 6 * DOLLAR, "tokens": 1_000})  # a call far dearer than estimated
    assert remaining_spend(quota) == 0
    with pytest.raises(RateLimited, match="spend limit"):
        quota.acquire(call(quota, 10, 0.01))
    quota.close()


def test_a_bucket_at_another_cost_keeps_everything_else() -> None:
    # with_cost spells the constructor out (it runs on every call): a field added to Bucket must be carried too.
    import dataclasses

    bucket = Bucket("spend", "calendar", "{p}/spend/day", 7, 1, unit="micro_usd", period="day", scope="pool")
    assert bucket.with_cost(99) == dataclasses.replace(bucket, cost=99)
    assert [field.name for field in dataclasses.fields(Bucket)] == [
        "kind",
        "strategy",
        "key",
        "limit",
        "cost",
        "unit",
        "period",
        "scope",
    ]  # the order with_cost passes them in
