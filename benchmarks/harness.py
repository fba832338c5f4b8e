"""A tiny side-by-side timing harness: every case of a group is measured in the same run, interleaved.

A case performs ``n`` requests per call of ``run(n)`` (an ASGI case loops inside one event-loop run),
so the per-request figure excludes harness overhead. Rounds are interleaved across the cases of a
group, so machine noise hits them alike; ratios against the group's first case ("bare") are what count.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field


@dataclass
class Case:
    group: str
    name: str
    run: Callable[[int], object]
    """Performs n requests (or calls)."""
    check: Callable[[], object] | None = None
    """Run once before timing: asserts the case really does what it claims (e.g. a 200, a guard hit)."""


@dataclass
class Result:
    group: str
    name: str
    samples_us: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_us)

    @property
    def low(self) -> float:
        return min(self.samples_us)

    @property
    def high(self) -> float:
        return max(self.samples_us)


def measure(cases: Sequence[Case], *, rounds: int = 15, target_seconds: float = 0.05) -> list[Result]:
    """Median/min/max microseconds per request for each case, measured side by side."""
    for case in cases:
        if case.check is not None:
            case.check()
        case.run(50)  # warm up
    numbers = {case.name: _calibrate(case, target_seconds) for case in cases}
    results = {case.name: Result(case.group, case.name) for case in cases}
    gc_was_enabled = gc.isenabled()
    for _ in range(rounds):
        for case in cases:
            n = numbers[case.name]
            gc.collect()
            gc.disable()
            start = time.perf_counter()
            case.run(n)
            elapsed = time.perf_counter() - start
            if gc_was_enabled:
                gc.enable()
            results[case.name].samples_us.append(elapsed / n * 1e6)
    return [results[case.name] for case in cases]


def _calibrate(case: Case, target_seconds: float) -> int:
    """How many requests one timed run of ``case`` should make to last about ``target_seconds``."""
    n = 1
    while True:
        start = time.perf_counter()
        case.run(n)
        elapsed = time.perf_counter() - start
        if elapsed >= target_seconds / 10 or n >= 1_000_000:
            return max(1, int(n * target_seconds / max(elapsed, 1e-9)))
        n *= 2


def table(results: Sequence[Result], baseline: str | None = None) -> str:
    """A markdown table; ratios are against ``baseline`` (default: the first case)."""
    base = next((r for r in results if r.name == baseline), results[0])
    lines = [
        "| case | µs median | min | max | vs bare | added µs |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        ratio = result.median / base.median
        added = result.median - base.median
        lines.append(
            f"| {result.name} | {result.median:.1f} | {result.low:.1f} | {result.high:.1f} | "
            f"{ratio:.2f}x | {added:+.1f} |"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def fake_claude_process() -> Iterator[str]:
    """A FakeClaude in a process of its own (so it does not share the GIL with what is measured); yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "claude_rbac.testing", "--no-record"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(timeout=10)
