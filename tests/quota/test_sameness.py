"""Memory and Redis give the same answers: the same sequences of admissions, settlements, reads and waits,
on a controlled clock, through ``Quota`` on ``memory://`` and on the real Redis.

The rules are written twice (Python under a lock, and ``buckets.lua``); this is what keeps them one.
Sequences cross minute, day and month boundaries (the clock starts 90 s before a UTC month ends).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import redis as redis_lib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_rbac import RateLimited
from claude_rbac.quota import Bucket, Quota, Reservation
from tests.support.redis import delete_prefix

START = dt.datetime(2031, 1, 31, 23, 58, 30, tzinfo=dt.timezone.utc).timestamp()
LIMITS = {"rpm": 3, "scope_rpm": 2, "tpm": 100, "pool_tpm": 150, "budget_day": 300, "budget_month": 500}
MENUS = [
    {"rpm": LIMITS["rpm"]},
    {"rpm": LIMITS["rpm"], "scope_name": "r", "scope_rpm": LIMITS["scope_rpm"]},
    {"tpm": LIMITS["tpm"]},
    {"tpm": LIMITS["tpm"], "pool_tpm": LIMITS["pool_tpm"]},
    {"rpm": LIMITS["rpm"], "tpm": LIMITS["tpm"], "budget_day": LIMITS["budget_day"]},
    {"budget_day": LIMITS["budget_day"], "budget_month": LIMITS["budget_month"]},
]


@dataclass
class Clock:
    now: float = START

    def __call__(self) -> float:
        return self.now


wait = st.tuples(st.just("wait"), st.sampled_from([0.0, 0.001, 0.5, 1.0, 7.5, 30.0, 59.0, 60.0, 61.0, 119.0]))
acquire = st.tuples(
    st.just("acquire"),
    st.sampled_from("ab"),
    st.integers(0, len(MENUS) - 1),
    st.sampled_from([1, 10, 40, 99, 120, 400]),
)
settle = st.tuples(st.just("settle"), st.integers(0, 30), st.sampled_from([0, 5, 40, 100, 1000]), st.booleans())
read = st.tuples(st.just("read"), st.sampled_from("ab"), st.integers(0, len(MENUS) - 1))
STEPS = st.lists(st.one_of(wait, acquire, acquire, settle, read), min_size=1, max_size=40)


def buckets(quota: Quota, who: str, menu: int, cost: int) -> tuple[Bucket, ...]:
    return quota.buckets(role="user", principal_id=who, tokens=cost, **{"rpm": None, **MENUS[menu]})


def play(quota: Quota, clock: Clock, steps: list[tuple[Any, ...]]) -> list[Any]:
    """Every answer the quota gives along ``steps``."""
    answers: list[Any] = []
    held: list[Reservation | None] = []
    for step in steps:
        if step[0] == "wait":
            clock.now += step[1]
        elif step[0] == "acquire":
            try:
                held.append(quota.acquire(buckets(quota, step[1], step[2], step[3])))
                answers.append("ok")
            except RateLimited as exc:
                answers.append((exc.reason, exc.message, exc.retry_after))
        elif step[0] == "settle" and held:
            index = step[1] % len(held)
            reservation, held[index] = held[index], None
            if reservation is not None:
                used = step[2] if step[3] else {"requests": step[2]}  # a unit no bucket counts: nothing moves
                quota.settle(reservation, used)
        elif step[0] == "read":
            answers.append(quota.remaining(buckets(quota, step[1], step[2], 1)))
    return answers


def both(redis_url: str, steps: list[tuple[Any, ...]]) -> tuple[list[Any], list[Any]]:
    prefix = f"claude_rbac_test_{uuid.uuid4().hex[:12]}"
    answers = []
    for uri in ("memory://", redis_url):
        clock = Clock()
        # A give-back rides the next call; the flusher's own send is left out (it would race the next step).
        quota = Quota(uri, key_prefix=prefix, clock=clock, settle_within=3600)
        try:
            answers.append(play(quota, clock, steps))
        finally:
            quota.close()
    delete_prefix(redis_url, prefix)
    return answers[0], answers[1]


@pytest.fixture(scope="module")
def redis(redis_server: str) -> str:
    if not redis_server:
        pytest.skip("no Redis available")
    return redis_server


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_memory_and_redis_answer_alike(redis: str, steps: list[tuple[Any, ...]]) -> None:
    on_memory, on_redis = both(redis, steps)
    assert on_memory == on_redis


def test_a_sequence_across_every_boundary(redis: str) -> None:
    """One worked sequence, so a difference shows in a readable answer as well as in a shrunk example."""
    steps: list[tuple[Any, ...]] = [
        ("acquire", "a", 4, 40),
        ("acquire", "a", 4, 40),
        ("settle", 0, 5, True),
        ("acquire", "a", 4, 40),
        ("acquire", "a", 4, 40),  # the rpm of 3 refuses
        ("read", "a", 4),
        ("wait", 30.0),
        ("acquire", "a", 3, 99),  # the tpm of 100 refuses: 5 + 40 + 40 are in this minute
        ("settle", 1, 1000, True),  # usage beyond the reservation is recorded whatever the window holds
        ("wait", 61.0),  # a new day and a new month
        ("read", "a", 5),
        ("acquire", "b", 5, 400),  # the day budget of 300 refuses
        ("read", "b", 3),
    ]
    on_memory, on_redis = both(redis, steps)
    assert on_memory == on_redis
    assert on_memory[3][0] == "rate_limited"
    assert on_memory[5][:2] == ("rate_limited", "Too many tokens per minute; retry later.")
    assert on_memory[7][0] == "token_budget_exceeded"


def _leftovers(redis_url: str, prefix: str) -> list[str]:
    """Keys under ``prefix`` that break the script's housekeeping: one with no expiry (it would never go), a
    counter at or below zero (a give-back deletes the counter it empties), a moving window longer than any limit."""
    client = redis_lib.Redis.from_url(redis_url)
    wrong = []
    for key in client.scan_iter(match=f"*{prefix}*", count=1000):
        kind = client.type(key)
        if client.ttl(key) < 0:
            wrong.append(f"{key!r}: no expiry")
        if kind == b"string" and int(client.get(key) or 0) <= 0:
            wrong.append(f"{key!r}: counter {client.get(key)!r}")
        if kind == b"list" and client.llen(key) > max(LIMITS.values()):
            wrong.append(f"{key!r}: {client.llen(key)} entries")
    return wrong


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_every_key_the_script_leaves_expires(redis: str, steps: list[tuple[Any, ...]]) -> None:
    """Whatever the sequence, the buckets' keys left in Redis each carry an expiry and count something."""
    prefix = f"claude_rbac_test_{uuid.uuid4().hex[:12]}"
    clock = Clock()
    quota = Quota(redis, key_prefix=prefix, clock=clock, settle_within=3600)
    try:
        play(quota, clock, steps)
        quota.flush()
        assert _leftovers(redis, prefix) == []
    finally:
        quota.close()
        delete_prefix(redis, prefix)
