"""memory:// storage: limits' MemoryStorage (a timer thread expires entries) against claude_rbac's LazyMemoryStorage.

Each question is asked of both storages side by side:

* **A hit, back to back**, for each storage's own cost (what a benchmark loop sees).
* **A hit and a governed call, at 1,000 and at 100,000 active users.** Hits and calls arrive at a steady
  rate and the process idles in between, as a server worker waits on its socket; each is counted for
  the next of N rotating users whose windows already hold an entry. Reported: the median and p99 time
  from a call's arrival to its end (so waiting for the GIL after the idle wait counts), and the CPU
  per call of the whole process, all threads included (``time.process_time`` over the run): limits'
  timer thread walks every key, which the caller only sees as waiting for the GIL.
* **Memory after 200,000 users went idle.** In a fresh process per storage: 200,000 distinct users are
  admitted once each (the storage work of one governed call each), they stay idle past the 60 s window
  while one user keeps calling, and then the process's RSS, the bytes tracemalloc sees and the keys
  the storage holds are read.

Run: ``.venv/bin/python -m benchmarks.bench_memory`` (about three minutes; ``--quick`` for less).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anthropic
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from benchmarks import harness
from benchmarks.wire_apps import ARGS, KEY, _options
from claude_rbac import RBAC, Principal
from claude_rbac.quota import LazyMemoryStorage

HIT_RATE = 2000
"""Hits a second: a busy process's share of traffic."""
CALL_RATE = 250
"""Governed calls a second (each one a whole SDK call, answered in-process)."""
POLICY = {"roles": {"user": {"models": ["claude-haiku-*"], "max_tokens": 512, "rpm": 1_000_000}}}
IDLE_USERS = 200_000
BURST = 4_000
"""Calls after the idle period: at most 64 idle keys freed per call, so 4,000 calls can free 256,000."""
WINDOW = 60.0


LIMITS, OURS = "limits' MemoryStorage", "claude_rbac LazyMemoryStorage"
STORAGES = {LIMITS: "limits-memory", OURS: "memory://"}
"""How each storage is named to the memory child (limits' is driven through its own limiter, not a URI)."""


@dataclass
class Run:
    calls: int
    wall: float
    cpu: float
    latencies: list[float]

    @property
    def median_us(self) -> float:
        return statistics.median(self.latencies) * 1e6

    @property
    def p99_us(self) -> float:
        return sorted(self.latencies)[int(len(self.latencies) * 0.99)] * 1e6

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.calls * 1e6


def paced(op: Callable[[int], object], seconds: float, rate: float) -> Run:
    """Call ``op(i)`` ``rate`` times a second for ``seconds``, idle in between.

    A call's time runs from when it was due (its arrival) to its end, so it includes waiting for the GIL
    after the idle wait, and queueing when calls fall behind.
    """
    period, latencies = 1 / rate, []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    due, i = wall0, 0
    while (now := time.perf_counter()) - wall0 < seconds:
        if now < due:
            time.sleep(due - now)
        op(i)
        latencies.append(time.perf_counter() - due)
        i += 1
        due += period
    return Run(i, time.perf_counter() - wall0, time.process_time() - cpu0, latencies)


def _quiet(storage: Any) -> None:
    """Let a limits timer that is still walking finish, so that it does not run into the next case's timing."""
    timer = getattr(storage, "timer", None)
    if timer is not None:
        timer.join()


@dataclass
class Case:
    name: str
    storage: Any
    op: Callable[[int], object]


def _loop_alone() -> Case:
    return Case("the pacing loop alone (no hit)", None, lambda i: None)


def _plain_call() -> Case:
    client = anthropic.Anthropic(api_key=KEY, base_url="http://claude.invalid", **_options(False))
    return Case("plain SDK call (no claude_rbac)", None, lambda i: client.messages.create(**ARGS))


def _hit_case(name: str, storage: Any, users: int) -> Case:
    limiter, item = MovingWindowRateLimiter(storage), RateLimitItemPerMinute(1_000_000)
    ids = [f"user-{n}" for n in range(users)]
    for who in ids:  # every user's window holds an entry before timing starts
        limiter.hit(item, who)
    return Case(f"{name}, {users:,} users", storage, lambda i: limiter.hit(item, ids[i % users]))


def _call_case(name: str, uri: str, users: int) -> Case:
    rbac = RBAC(POLICY, storage=uri, api_key=KEY, base_url="http://claude.invalid", client_options=_options(False))
    principals = [Principal(f"user-{n}", "user") for n in range(users)]
    for principal in principals:  # through the quota: what a governed call does to the storage
        rbac.quota.acquire(rbac.quota.buckets(role="user", principal_id=principal.id, rpm=1_000_000))

    def call(i: int) -> None:
        rbac.client(principals[i % users]).messages.create(**ARGS)

    return Case(f"{name}, {users:,} users", rbac.quota.storage, call)


def measure(cases: Sequence[Case], rounds: int, seconds: float, rate: float) -> dict[str, list[Run]]:
    """Each case for ``seconds`` at ``rate``, interleaved over ``rounds``."""
    runs: dict[str, list[Run]] = {case.name: [] for case in cases}
    for case in cases:
        _quiet(case.storage)
    for _ in range(rounds):
        for case in cases:
            gc.collect()
            runs[case.name].append(paced(case.op, seconds, rate))
            _quiet(case.storage)
    return runs


def table(runs: dict[str, list[Run]]) -> str:
    """Medians over the rounds; "added" is against the first case (the loop alone, or a plain SDK call)."""
    lines = [
        "| case | µs from arrival, median | p99 | CPU µs per call, all threads | CPU µs added | calls/s reached |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = None
    for name, samples in runs.items():
        median = statistics.median(run.median_us for run in samples)
        p99 = statistics.median(run.p99_us for run in samples)
        cpu = statistics.median(run.cpu_us for run in samples)
        rate = statistics.median(run.calls / run.wall for run in samples)
        base = cpu if base is None else base
        lines.append(f"| {name} | {median:.1f} | {p99:.1f} | {cpu:.1f} | {cpu - base:+.1f} | {rate:,.0f} |")
    return "\n".join(lines)


def back_to_back(cases: Sequence[Case], rounds: int, hits: int = 20_000) -> list[harness.Result]:
    """µs per hit, ``hits`` in a row; rounds interleaved, a limits timer still walking let finish between them."""
    results = {case.name: harness.Result("memory-hit", case.name) for case in cases}
    for _ in range(rounds):
        for case in cases:
            _quiet(case.storage)
            gc.collect()
            start = time.perf_counter()
            for i in range(hits):
                case.op(i)
            results[case.name].samples_us.append((time.perf_counter() - start) / hits * 1e6)
    return list(results.values())


def speed(rounds: int = 3, seconds: float = 2.0) -> str:
    out = []
    for users in (1_000, 100_000):
        hits = [_hit_case(LIMITS, MemoryStorage(), users), _hit_case(OURS, LazyMemoryStorage(), users)]
        out += [
            f"### One moving-window hit, back to back, {users:,} active users (µs per hit; against limits')",
            harness.table(back_to_back(hits, rounds + 2)),
            f"### One moving-window hit, {HIT_RATE:,} a second, {users:,} active users",
            table(measure([_loop_alone(), *hits], rounds, seconds, HIT_RATE)),
        ]
    for users in (1_000, 100_000):
        calls = [_plain_call(), _call_case(OURS, STORAGES[OURS], users)]
        out += [
            f"### One governed call (RPM; in-process answer), {CALL_RATE:,} a second, {users:,} active users",
            table(measure(calls, rounds, seconds, CALL_RATE)),
        ]
    return "\n\n".join(out)


# -- memory, one fresh process per storage --------------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _keys(storage: Any) -> int:
    if isinstance(storage, LazyMemoryStorage):
        return len(storage)
    return len(storage.events) + len(storage.storage)  # limits' MemoryStorage: its two tables


def _admitter(uri: str) -> tuple[Any, Callable[[str], None]]:
    """(the storage, admit one user): through the quota for ours; limits' own moving-window limiter for limits'
    MemoryStorage (the quota runs only on its own memory storage or Redis now), the same storage work a call did."""
    if uri == STORAGES[LIMITS]:
        storage = MemoryStorage()
        limiter, item = MovingWindowRateLimiter(storage), RateLimitItemPerMinute(1_000_000)

        def hit(who: str) -> None:
            limiter.hit(item, "claude_rbac/rpm/user", who)

        return storage, hit
    quota = RBAC(POLICY, storage=uri, api_key=KEY).quota

    def acquire(who: str) -> None:
        quota.acquire(quota.buckets(role="user", principal_id=who, rpm=1_000_000))

    return quota.storage, acquire


def child(uri: str, idle: float, trace: bool) -> dict[str, float]:
    """In a fresh process: 200,000 users admitted once, idle past the window while one user calls, then traffic again.

    With ``trace``, tracemalloc counts the bytes Python holds (its own bookkeeping inflates RSS, so RSS is read
    in a run without it).
    """
    storage, admit = _admitter(uri)
    gc.collect()
    if trace:
        tracemalloc.start()
    rss0 = _rss_mb()

    def held() -> float:
        _quiet(storage)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] / 2**20 if trace else _rss_mb() - rss0

    for n in range(IDLE_USERS):
        admit(f"user-{n}")
    busy, keys_busy = held(), _keys(storage)
    deadline = time.monotonic() + idle
    while time.monotonic() < deadline:  # the others idle past their window; one user calls 10 times a second
        admit("still-active")
        time.sleep(0.1)
    for _ in range(BURST):  # then traffic comes back (one user stands for it)
        admit("still-active")
    return {"busy_mb": busy, "keys_busy": keys_busy, "idle_mb": held(), "keys_idle": _keys(storage)}


def memory(idle: float = WINDOW + 2) -> str:
    """Four fresh processes at once (limits' and ours, each with and without tracemalloc); a table."""
    runs = {
        (name, trace): subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_memory", "--child", uri, "--idle", str(idle)]
            + (["--trace"] if trace else []),
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, uri in STORAGES.items()
        for trace in (False, True)
    }
    rows = {
        key: json.loads(process.communicate(timeout=idle + 900)[0].strip().splitlines()[-1])
        for key, process in runs.items()
    }
    lines = [
        "| storage | keys, busy | RSS MB, busy | traced MB, busy | keys, idle | RSS MB, idle | traced MB, idle |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in STORAGES:
        rss, traced = rows[name, False], rows[name, True]
        lines.append(
            f"| {name} | {rss['keys_busy']:,} | {rss['busy_mb']:.1f} | {traced['busy_mb']:.1f} | "
            f"{rss['keys_idle']:,} | {rss['idle_mb']:.1f} | {traced['idle_mb']:.1f} |"
        )
    return "\n\n".join(
        [
            f"### Memory: {IDLE_USERS:,} users admitted once each, then idle past the window (growth over a fresh "
            f"process; busy: right after; idle: after the window, then {BURST:,} calls of one user)",
            "\n".join(lines),
        ]
    )


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_memory")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--idle", type=float, default=WINDOW + 2, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="one round of one second per case")
    args = parser.parse_args(argv)
    if args.child:
        return json.dumps(child(args.child, args.idle, args.trace))
    return "\n\n".join([speed(*((1, 1.0) if args.quick else (3, 2.0))), memory()])


if __name__ == "__main__":
    print(main())
