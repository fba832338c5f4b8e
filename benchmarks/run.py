"""``make bench``: every benchmark, side by side in one run, written into benchmarks/README.md.

Run: ``.venv/bin/python -m benchmarks.run --write benchmarks/README.md`` (``--quick`` for fewer rounds).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import (
    bench_added_cpu,
    bench_calls,
    bench_core,
    bench_django,
    bench_fastapi,
    bench_flask,
    bench_memory,
    bench_redis,
    bench_starlette,
    bench_wire,
    harness,
)

HERE = Path(__file__).resolve().parent


def _find(results: Sequence[harness.Result], prefix: str) -> harness.Result:
    return next(r for r in results if r.name.startswith(prefix))


class Report:
    def __init__(self) -> None:
        self.sections: list[str] = []
        self.targets: list[tuple[str, str, str, bool]] = []
        self.redis_round_trips: float | None = None
        """Round trips per governed call with RPM+TPM+budget on Redis (the counting proxy's)."""
        self.added_cpu: list[tuple[str, bench_added_cpu.Paired]] = []
        """The CPU governed calls add to a plain one, measured in one process (``bench_added_cpu``)."""

    def table(self, title: str, results: Sequence[harness.Result], baseline: str | None = None) -> None:
        self.sections += [f"### {title}", harness.table(results, baseline)]

    def target(self, what: str, goal: str, measured: str, met: bool) -> None:
        self.targets.append((what, goal, measured, met))


def _in_process(report: Report, rounds: int) -> None:
    def run(cases: list[harness.Case]) -> list[harness.Result]:
        return harness.measure(cases, rounds=rounds)

    decisions = run(bench_core.decision_cases())
    report.table("One decision: rbac.check against Casbin's enforce (µs)", decisions)
    check = max(_find(decisions, "rbac.check (allow)").median, _find(decisions, "rbac.check (deny)").median)
    casbin = _find(decisions, "casbin enforce (allow)").median, _find(decisions, "casbin enforce (deny)").median
    report.target(
        "`rbac.check`",
        "<= 2 µs (Casbin 34-52 µs)",
        f"{check:.1f} µs (Casbin {casbin[0]:.0f} / {casbin[1]:.0f} µs here)",
        check <= 2.0,
    )

    flask = run(bench_flask.cases())
    report.table("Flask, in-process WSGI (µs per request)", flask)
    bare, reading = _find(flask, "flask bare route").median, _find(flask, "bare route reading").median
    ours, peer = _find(flask, "claude_rbac requires_role").median, _find(flask, "Flask-Limiter").median
    report.target(
        "Flask guarded / bare",
        "<= 1.2",
        f"{ours / bare:.2f} ({ours / reading:.2f} against a bare route that reads the session, as any login does)",
        ours / bare <= 1.2,
    )
    report.target(
        "Flask added µs vs Flask-Limiter's",
        "below",
        f"{ours - bare:+.1f} vs {peer - bare:+.1f}",
        ours - bare < peer - bare,
    )

    star = run(bench_starlette.cases())
    report.table("Starlette, direct ASGI calls (µs per request)", star)
    bare = _find(star, "starlette bare route").median
    ours = _find(star, "starlette + claude_rbac (middleware, requires_role, get_claude)").median
    guard = _find(star, "starlette + claude_rbac (middleware, requires_role)").median
    peer = _find(star, "starlette + slowapi").median
    report.target(
        "Starlette guarded / bare",
        "<= 2.0",
        f"{guard / bare:.2f} guard alone, {ours / bare:.2f} with get_claude",
        ours / bare <= 2.0,
    )
    report.target(
        "Starlette added µs vs slowapi's",
        "below",
        f"{ours - bare:+.1f} vs {peer - bare:+.1f}",
        ours - bare < peer - bare,
    )

    fast = run(bench_fastapi.cases())
    report.table("FastAPI, direct ASGI calls (µs per request)", fast)
    bare, floor = _find(fast, "fastapi bare route").median, _find(fast, "fastapi + one empty Depends()").median
    ours, peer = _find(fast, "fastapi + claude_rbac").median, _find(fast, "fastapi + slowapi").median
    report.target(
        "FastAPI guarded / bare",
        "<= 1.2",
        f"{ours / bare:.2f} (one empty Depends() alone is {floor / bare:.2f})",
        ours / bare <= 1.2,
    )
    report.target(
        "FastAPI added µs vs slowapi's", "below", f"{ours - bare:+.1f} vs {peer - bare:+.1f}", ours - bare < peer - bare
    )

    django = run(bench_django.cases())
    report.table("Django, in-process WSGI (µs per request)", [r for r in django if r.group == "django"])
    report.table(
        "Django with the auth middleware and groups (µs per request)", [r for r in django if r.group == "django-auth"]
    )
    bare, ours = _find(django, "bare view (session)").median, _find(django, "requires_role('user') + RBAC").median
    report.target("Django guarded / bare", "<= 1.2", f"{ours / bare:.2f}", ours / bare <= 1.2)

    calls = run(bench_calls.flask_cases())
    report.table("Flask route that calls Claude, in-process answer (µs per request)", calls)
    fcalls = run(bench_calls.fastapi_cases())
    report.table("FastAPI route that calls Claude, in-process answer (µs per request)", fcalls)

    redis = run(bench_redis.latency_cases())
    report.table("Admission: memory against Redis on loopback (µs per call)", redis)


def _with_fake_claude(report: Report, rounds: int) -> None:
    with harness.fake_claude_process() as url:
        derive = harness.measure(bench_core.derivation_cases(url), rounds=rounds)
        report.table("Deriving a governed client (µs)", derive)
        calls = harness.measure(bench_core.call_cases(url), rounds=rounds, target_seconds=0.3)
        report.table("One call to FakeClaude in its own process, over HTTP (µs per call)", calls)
        plain = _find(calls, "plain anthropic client").median
        policy_only = _find(calls, "governed client (policy only)").median
        limited = _find(calls, "governed client (policy + RPM, memory)").median
        priced = _find(calls, "governed client (policy + spend limit, memory)").median
        report.target(
            "governed call (policy) / plain SDK call",
            "<= 1.05",
            f"{policy_only / plain:.3f}",
            policy_only / plain <= 1.05,
        )
        report.target(
            "governed call (policy + RPM, memory) / plain SDK call",
            "<= 1.05",
            f"{limited / plain:.3f}",
            limited / plain <= 1.05,
        )
        report.target(
            "pricing a call (policy + spend limit) over policy only, memory",
            "in the table",
            f"+{priced - policy_only:.1f} µs",
            True,
        )
        trips = bench_redis.round_trips(url)
        lines = ["| buckets per call | Redis round trips per call | Lua scripts per call |", "| --- | ---: | ---: |"]
        lines += [f"| {name} | {t:.2f} | {s:.2f} |" for name, t, s in trips]
        report.sections += [
            "### Redis round trips per governed call (200 calls through a counting proxy)",
            "\n".join(lines),
        ]
        worst = max(t for _, t, _ in trips)
        report.redis_round_trips = worst
        report.target(
            "Redis round trips per governed call",
            "1",
            f"{worst:.2f} (worst of RPM, + TPM + budget, + spend)",
            worst <= 1.0,
        )


def _wire_targets(report: Report, matrix: bench_wire.Matrix) -> None:
    """The #19 targets, from the governed call matrix (Flask, gunicorn, one sync worker, side by side)."""
    users = bench_wire.USER_COUNTS
    noise = max(abs(1 - matrix.ratio(f"again-{n}")) for n in users)
    memory = {n: matrix.ratio(name) for n in users if (name := matrix.find("memory", "rpm", n))}
    full = {n: matrix.ratio(name) for n in users if (name := matrix.find("memory", "tokens", n))}
    shown = ", ".join(f"{memory[n]:.2f} at {n:,}" for n in memory)
    report.target(
        "over the wire, memory: governed call / plain call, 1,000 and 100,000 users",
        ">= 0.9x",
        f"{shown} (RPM+TPM+budget: {', '.join(f'{full[n]:.2f}' for n in full)}; A/A noise ±{noise:.2f})",
        bool(memory) and min(memory.values()) >= 0.9,
    )
    redis = {n: name for n in users if (name := matrix.find("redis", "tokens", n))}
    ratios = {n: matrix.ratio(name) for n, name in redis.items()}
    wakeups = max(matrix.switches(name) for name in redis.values())
    trips = report.redis_round_trips
    floor = ", ".join(f"{matrix.ratio(f'ping-{n}'):.2f}" for n in ratios)
    report.target(
        "over the wire, Redis RPM+TPM+budget: governed / plain; round trips and thread wake-ups per call",
        ">= 0.75x, 1, 0",
        f"{', '.join(f'{ratios[n]:.2f} at {n:,}' for n in ratios)} (a plain call after one Redis PING: {floor}); "
        f"{'-' if trips is None else f'{trips:.2f}'} round trips; {wakeups:.2f} wake-ups",
        min(ratios.values()) >= 0.75 and (trips is None or trips <= 1.0) and wakeups < 0.05,
    )
    route = {n: matrix.added_cpu(name) for n, name in ((n, matrix.find("memory", "rpm", n)) for n in users) if name}
    calls = [row for label, row in report.added_cpu if label.startswith("governed call, memory, rpm")]
    report.target(
        "added CPU per governed call (memory, RPM, no SDK tracer) over a plain SDK call",
        "<= +80 µs",
        (
            ", ".join(f"{row.added:+.0f} µs (quartiles {row.low:+.0f}..{row.high:+.0f})" for row in calls)
            + " at 1,000 and 100,000 users, in one process; "
            if calls
            else "not measured in one process (`--wire-only`); "
        )
        + "over the wire, route with its guard: "
        + ", ".join(f"{value:+.0f} µs at {n:,}" for n, value in route.items())
        + " (the guard alone: "
        + ", ".join(f"{matrix.added_cpu(f'guarded-{n}'):+.0f}" for n in route)
        + ")",
        bool(calls) and max(row.high for row in calls) <= 80,
    )


def _added_cpu(report: Report, quick: bool) -> None:
    """What a governed call adds to a plain one, both in one process, taking turns (see ``bench_added_cpu``)."""
    text, report.added_cpu = bench_added_cpu.main(quick)
    report.sections.append(text)


def _memory_storage(report: Report, quick: bool) -> None:
    """memory:// on limits' MemoryStorage against ours: per hit and per call at 1,000 and 100,000 users, and memory."""
    report.sections += [bench_memory.speed(*((1, 1.0) if quick else (3, 2.0))), bench_memory.memory()]


def _machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{dt.date.today().isoformat()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def render(report: Report, wire: str) -> str:
    summary = ["| target | goal | measured | |", "| --- | --- | --- | --- |"]
    summary += [f"| {w} | {g} | {m} | {'met' if ok else '**missed**'} |" for w, g, m, ok in report.targets]
    soak = HERE / "soak.md"
    parts = [
        "# Benchmarks",
        "",
        "Everything here is measured side by side in one run of `make bench` "
        "(`.venv/bin/python -m benchmarks.run --write benchmarks/README.md`). Cases of a group are interleaved "
        "over the rounds, so machine noise hits them alike; the ratios against the bare route of the same run "
        "are what count. Medians, with min and max over the rounds.",
        "",
        f"Machine: {_machine()}.",
        "",
        "## Targets",
        "",
        "\n".join(summary),
        "",
        "Where a target is missed, the notes at the end say what is in the way.",
        "",
        "## In process",
        "",
        "\n\n".join(report.sections),
        "",
        "## Over the wire",
        "",
        wire,
        "",
    ]
    if soak.exists():
        parts += [
            "## Soak",
            "",
            "See [soak.md](soak.md): the soak runs in `make test`; "
            "`CLAUDE_RBAC_SOAK_REPORT=benchmarks/soak.md` writes its numbers.",
            "",
        ]
    notes = HERE / "NOTES.md"
    if notes.exists():
        parts += [notes.read_text().strip(), ""]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run")
    parser.add_argument("--write", type=Path, help="write the markdown here instead of printing it")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter wrk runs (a smoke run)")
    parser.add_argument("--wire-only", action="store_true", help="only the over-the-wire tables (a smoke run)")
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else 15
    report = Report()
    steps: list[tuple[str, Callable[[], object]]] = [
        ("in-process", lambda: _in_process(report, rounds)),
        ("FakeClaude and Redis", lambda: _with_fake_claude(report, rounds)),
        ("memory storage", lambda: _memory_storage(report, args.quick)),
        ("the CPU a governed call adds, in one process", lambda: _added_cpu(report, args.quick)),
    ]
    for name, step in [] if args.wire_only else steps:
        print(f"measuring: {name}", file=sys.stderr)
        step()
    print("measuring: over the wire", file=sys.stderr)
    if shutil.which("wrk") is None:
        print("wrk is not installed: a Python load generator stands in (apt-get install wrk)", file=sys.stderr)
    wire, matrix = bench_wire.main(quick=args.quick)
    _wire_targets(report, matrix)
    text = render(report, wire)
    if args.write:
        args.write.write_text(text)
        print(f"wrote {args.write}", file=sys.stderr)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
