"""The CPU a governed call adds to a plain SDK call, measured in one process, interleaved, to a few µs.

The over-the-wire matrix runs each route in a worker of its own, and on a shared VM one process's CPU per
request can differ from another's, running the same code, by more than the tens of µs a per-call target
is about (``NOTES.md`` shows it). Here both clients live in one process and take turns: rounds of
``plain, governed, governed, plain`` batches (the order cancels a drift inside the round), each batch's
``time.process_time()`` over its calls. The figure is the median over the rounds of (governed - plain)
per call, with the quartiles of those differences beside it; a plain-vs-plain pair shows the noise.

The calls are ``messages.create`` through the real anthropic SDK, answered in-process by an
``httpx2.MockTransport`` (``wire_apps``' canned message), with no route around them (the route guard is
the wire matrix's "guard + plain SDK call" row). A governed call here is what a route does per call:
``rbac.client(principal)`` (a cache hit, or at 100,000 users a clone for a principal it does not hold)
and ``messages.create``; each call is counted as the next of the rotating users, whose windows are all
live (prefilled) before the rounds start.

Run: ``.venv/bin/python -m benchmarks.bench_added_cpu`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import anthropic
import redis
from tests.support.redis import delete_prefix

from benchmarks.wire_apps import ARGS, KEY, LIMITS, REDIS, ROLE, _options, prefill
from claude_rbac import RBAC, Principal

CASES = [
    ("memory", "rpm", 1_000),
    ("memory", "rpm", 100_000),
    ("memory", "tokens", 1_000),
    ("redis", "rpm", 1_000),
    ("redis", "tokens", 1_000),
    ("redis", "tokens", 100_000),
]
"""(storage, limits, active users): ``limits`` as in ``wire_apps.LIMITS`` (tokens: RPM+TPM+budget)."""


@dataclass(frozen=True)
class Paired:
    """Per-call CPU (µs) of two callables taking turns in one process."""

    first: float
    second: float
    added: float
    low: float
    high: float


def paired(
    first: Callable[[], object], second: Callable[[], object], *, rounds: int, batch: int, warm_up: int = 0
) -> Paired:
    """Median over ``rounds`` of (second - first) per call, each round ``first, second, second, first``.

    Both are called ``max(batch, warm_up)`` times first (caches, the first client of each principal)."""
    for call in (first, second):
        for _ in range(max(batch, warm_up)):
            call()
    per_call: dict[int, list[float]] = {0: [], 1: []}
    differences = []
    for _ in range(rounds):
        spent = [0.0, 0.0]
        for which in (0, 1, 1, 0):
            call = (first, second)[which]
            started = time.process_time()
            for _ in range(batch):
                call()
            spent[which] += time.process_time() - started
        first_us, second_us = (spent[which] / (2 * batch) * 1e6 for which in (0, 1))
        per_call[0].append(first_us)
        per_call[1].append(second_us)
        differences.append(second_us - first_us)
    low, _, high = statistics.quantiles(differences, n=4)
    return Paired(
        statistics.median(per_call[0]), statistics.median(per_call[1]), statistics.median(differences), low, high
    )


def _plain() -> Callable[[], object]:
    """Calls through a plain client of its own."""
    client = anthropic.Anthropic(api_key=KEY, base_url="http://claude.invalid", **_options(False))

    def call() -> object:
        return client.messages.create(**ARGS)

    return call


def _governed(storage: str, limits: str, users: int, prefix: str) -> Callable[[], object]:
    rbac = RBAC(
        {"roles": {"user": {**ROLE, **LIMITS[limits]}}},
        storage=REDIS if storage == "redis" else "memory://",
        key_prefix=prefix,
        api_key=KEY,
        base_url="http://claude.invalid",
        client_options=_options(False),
        warn_multiprocess=False,
    )
    prefill(rbac, users)
    principals = [Principal(f"uma-{n}", "user") for n in range(users)]
    turn = iter(range(10**12))

    def call() -> object:
        return rbac.client(principals[next(turn) % users]).messages.create(**ARGS)

    return call


def _after_ping(plain: Callable[[], object]) -> Callable[[], object]:
    pinged = redis.Redis.from_url(REDIS)

    def call() -> object:
        pinged.ping()
        return plain()

    return call


def measure(rounds: int, batch: int) -> list[tuple[str, Paired]]:
    plain_call, again = _plain(), _plain()
    rows = [
        ("plain SDK call, again (A/A: the noise)", paired(plain_call, again, rounds=rounds, batch=batch)),
        (
            "plain SDK call + one Redis PING (the Redis floor)",
            paired(plain_call, _after_ping(again), rounds=rounds, batch=batch),
        ),
    ]
    for storage, limits, users in CASES:
        prefix = f"added-{uuid.uuid4().hex[:8]}"
        try:
            governed = _governed(storage, limits, users, prefix)
            gc.collect()
            label = f"governed call, {'Redis' if storage == 'redis' else 'memory'}, {limits}, {users:,} users"
            # Every user seen twice before the rounds: at 1,000 users their clients are then cached, as in an
            # app that has served them before; at 100,000 no cache holds them all, and the rounds show that.
            warm_up = 2 * min(users, 10_000)
            rows.append((label, paired(plain_call, governed, rounds=rounds, batch=batch, warm_up=warm_up)))
            del governed
        finally:
            if storage == "redis":
                delete_prefix(REDIS, prefix)
    return rows


def table(rows: list[tuple[str, Paired]]) -> str:
    lines = [
        "| call | plain µs/call | this µs/call | added µs/call (median of rounds) | quartiles of the rounds |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, row in rows:
        lines.append(
            f"| {label} | {row.first:,.0f} | {row.second:,.0f} | {row.added:+,.1f} | "
            f"{row.low:+,.1f} .. {row.high:+,.1f} |"
        )
    return "\n".join(lines)


def main(quick: bool = False) -> tuple[str, list[tuple[str, Paired]]]:
    rounds, batch = (3, 200) if quick else (15, 1_000)
    rows = measure(rounds, batch)
    header = (
        f"### The CPU a governed call adds, in one process ({rounds} rounds of plain, governed, governed, plain; "
        f"{batch:,} calls a batch)"
    )
    return "\n\n".join([header, table(rows)]), rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_added_cpu")
    parser.add_argument("--quick", action="store_true")
    print(main(parser.parse_args().quick)[0])
