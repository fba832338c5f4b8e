"""A closed-loop HTTP load generator for the example apps' JSON API (asyncio + httpx, bounded concurrency).

Each virtual client signs in as one demo user (its own cookie jar and connection), then sends one
request at a time until the deadline or the request budget runs out, pausing ``think`` seconds
between requests. Concurrency is therefore the number of clients, never more. Every request is
recorded: who sent it, which route, when, how long it took, the status and the error code.

Prompts carry the user and a sequence number (``soak uma2 #123``), so each call that reaches
FakeClaude can be matched to the request that caused it.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = [
    "Cohort",
    "LoadRun",
    "Result",
    "RoleStats",
    "busiest_window",
    "drive",
    "parse_prompt",
    "percentile",
    "role_stats",
]

PROMPT = re.compile(r"soak (?P<user>\S+) #(?P<seq>\d+)")
ROUTE_CYCLE = ("chat", "stream", "chat", "long")
"""The routes a client visits in turn (each client starts at a different place in the cycle)."""
CHAT_MAX_TOKENS = 64
STREAM_MAX_TOKENS = 16


@dataclass(frozen=True)
class Cohort:
    """Users of one role, each with ``clients`` virtual clients that pause ``think`` seconds between requests."""

    role: str
    users: tuple[str, ...]
    clients: int = 1
    think: float = 0.0


@dataclass(slots=True)
class Result:
    seq: int
    user: str
    role: str
    route: str
    sent_at: float
    """Wall-clock time (``time.time()``) the request was sent."""
    latency: float
    """Seconds until the whole response (the whole stream, for SSE) was read."""
    status: int
    """The HTTP status; 0 when the request failed at the transport level (a timeout, a reset)."""
    error_code: str | None = None
    """``error.error_code`` of an error body (``rate_limited``, ``backend_unavailable``...), or the failure."""
    limit: str | None = None
    """For a 429: which bucket refused it, ``requests`` or ``tokens`` (from the message)."""

    @property
    def done_at(self) -> float:
        return self.sent_at + self.latency


@dataclass
class LoadRun:
    results: list[Result] = field(default_factory=list)
    started_at: float = 0.0
    ended_at: float = 0.0

    @property
    def seconds(self) -> float:
        return self.ended_at - self.started_at

    @property
    def rps(self) -> float:
        return len(self.results) / self.seconds if self.seconds > 0 else 0.0


def prompt_for(user: str, seq: int) -> str:
    return f"soak {user} #{seq}"


def parse_prompt(text: str) -> tuple[str, int] | None:
    """(user, seq) from a prompt this generator wrote, else ``None``."""
    match = PROMPT.fullmatch(text)
    return (match["user"], int(match["seq"])) if match else None


async def _send(client: httpx.AsyncClient, route: str, prompt: str) -> httpx.Response:
    if route == "chat":
        return await client.post("/api/chat", json={"prompt": prompt, "max_tokens": CHAT_MAX_TOKENS})
    if route == "long":
        return await client.post("/api/long", json={"prompt": prompt})
    params = {"prompt": prompt, "max_tokens": str(STREAM_MAX_TOKENS)}
    return await client.get("/api/chat/stream", params=params)


def _classify(route: str, response: httpx.Response) -> tuple[str | None, str | None]:
    """(error code, refusing limit) of a response; an SSE 200 that did not finish is ``incomplete_stream``."""
    if response.status_code == 200:
        complete = route != "stream" or "event: done" in response.text
        return (None if complete else "incomplete_stream"), None
    try:
        error: Any = response.json()["error"]
        code = error.get("error_code") or error.get("type")
        message = str(error.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return "unparsable_error_body", None
    limit = None
    if response.status_code == 429:
        limit = "tokens" if "token" in message else "requests"
    return code, limit


class _Budget:
    """The most requests the whole run may send."""

    def __init__(self, requests: int) -> None:
        self.left = requests

    def take(self) -> bool:
        self.left -= 1
        return self.left >= 0


async def _client_loop(
    url: str,
    cohort: Cohort,
    user: str,
    offset: int,
    *,
    deadline: float,
    budget: _Budget,
    seqs: Iterator[int],
    results: list[Result],
    timeout: float,
    keepalive: bool,
) -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1 if keepalive else 0)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        login = await client.post("/login", json={"username": user})
        login.raise_for_status()
        if login.json().get("role") != cohort.role:
            raise RuntimeError(f"{user} signed in as {login.json().get('role')!r}, not {cohort.role!r}")
        for turn in itertools.count(offset):
            if time.monotonic() >= deadline or not budget.take():
                return
            seq = next(seqs)
            route = ROUTE_CYCLE[turn % len(ROUTE_CYCLE)]
            sent_at, started = time.time(), time.perf_counter()
            try:
                response = await _send(client, route, prompt_for(user, seq))
                status = response.status_code
                code, limit = _classify(route, response)
            except httpx.HTTPError as exc:
                status, code, limit = 0, type(exc).__name__, None
            results.append(
                Result(seq, user, cohort.role, route, sent_at, time.perf_counter() - started, status, code, limit)
            )
            if cohort.think:
                await asyncio.sleep(max(0.0, min(cohort.think, deadline - time.monotonic())))


async def drive(
    url: str,
    cohorts: Sequence[Cohort],
    *,
    seconds: float,
    max_requests: int,
    keepalive: bool = True,
    timeout: float = 10.0,
) -> LoadRun:
    """Run every cohort's clients against ``url`` for ``seconds`` (and at most ``max_requests`` requests).

    ``keepalive=False`` opens a connection per request (see benchmarks/soak.md for why the soak does).
    """
    run = LoadRun()
    budget = _Budget(max_requests)
    seqs = itertools.count(1)
    run.started_at = time.time()
    deadline = time.monotonic() + seconds
    loops = [
        _client_loop(
            url,
            cohort,
            user,
            offset=u * cohort.clients + c,
            deadline=deadline,
            budget=budget,
            seqs=seqs,
            results=run.results,
            timeout=timeout,
            keepalive=keepalive,
        )
        for cohort in cohorts
        for u, user in enumerate(cohort.users)
        for c in range(cohort.clients)
    ]
    await asyncio.gather(*loops)
    run.ended_at = time.time()
    return run


# -- statistics ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class RoleStats:
    requests: int
    statuses: dict[int, int]
    p50: float
    p99: float


def role_stats(results: Iterable[Result]) -> dict[str, RoleStats]:
    """Per role: requests, status counts and latency percentiles."""
    by_role: dict[str, list[Result]] = {}
    for result in results:
        by_role.setdefault(result.role, []).append(result)
    stats = {}
    for role, group in by_role.items():
        latencies = [r.latency for r in group]
        statuses = dict(sorted(Counter(r.status for r in group).items()))
        stats[role] = RoleStats(len(group), statuses, percentile(latencies, 50), percentile(latencies, 99))
    return stats


def busiest_window(times: Iterable[float], window: float, weights: Iterable[float] | None = None) -> float:
    """The largest total weight (default: count) of events inside any half-open interval ``window`` long."""
    events = sorted(zip(times, weights if weights is not None else itertools.repeat(1.0), strict=False))
    best = total = 0.0
    start = 0
    for at, weight in events:
        total += weight
        while at - events[start][0] >= window:
            total -= events[start][1]
            start += 1
        best = max(best, total)
    return best
