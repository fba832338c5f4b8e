"""A soak run as markdown, and ``benchmarks/soak.md`` kept as one section per variant.

The test writes the ``persistent`` section; ``python -m tests.soak --no-persistence --write ...``
writes the ``volatile`` one. Each write replaces its own section and keeps the others.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path

from tests.soak.load import RoleStats, percentile, role_stats
from tests.soak.scenario import COHORTS, TPM, SoakRun

__all__ = ["markdown", "section_name", "write_section"]

HEADER = """\
# Soak: the FastAPI example under load, with Redis restarted mid-run

The FastAPI example (`examples/fastapi_app`) under uvicorn with 4 workers, sharing a private
`redis-server` on 127.0.0.1, calls a FakeClaude in the test process. Signed-in demo users of every
role (viewer, user, power, admin; several of each) drive `POST /api/chat`, `POST /api/long` and
`GET /api/chat/stream` from an asyncio httpx load generator with bounded concurrency, for 60 seconds.
A third of the way in, Redis is stopped, and started again on the same port and data directory a
few seconds later; the app is not restarted. Every call that reaches FakeClaude carries its user and
a sequence number in the prompt, so the counts below are FakeClaude's own, matched one to one with
the clients' 200s, and the limit is checked as a moving window over the times FakeClaude received them.

The policy: viewer `allowed = false`; user haiku, `rpm = 30`; power sonnet and opus, `rpm = 60`,
`tpm = 1200`; admin `rpm = 300`. Some clients send as fast as answers come; paced ones (a pause
after each request) fill their window over half a minute, so their admissions straddle the outage.

Reproduce (Linux, `redis-server` on the PATH):

```
# asserts, and writes the first section:
CLAUDE_RBAC_SOAK_REPORT=benchmarks/soak.md .venv/bin/pytest -p no:cacheprovider tests/soak
.venv/bin/python -m tests.soak --no-persistence --write benchmarks/soak.md  # measures the second
.venv/bin/python -m tests.soak --keepalive --write benchmarks/soak.md       # measures the third
```

`CLAUDE_RBAC_SOAK_SECONDS` shortens or lengthens the run (default 60). `make test` runs the soak and
asserts, but writes nothing; with `CLAUDE_RBAC_SOAK_REPORT` set, the test rewrites its section of that
file. Each section says when it ran and how busy the machine was just before.

Why `--appendonly yes --appendfsync always`: the moving windows live in Redis, so a Redis that
restarts empty gives every principal a fresh window at once (the second section measures it: up to
twice the limit within a minute). With `always`, each counter write is on disk before Redis answers
the script that made it, so not even a crash (the test sends SIGTERM) forgets an admitted call;
`everysec` could forget the last second of admissions, RDB snapshots minutes of them. The price is an
fsync per write (admissions, token reservations, settlements); a request refused by a role that has
only an rpm writes nothing.

Connections: each request opens its own connection. With `--workers N`, uvicorn 0.54 leaves
Nagle's algorithm on for the sockets it passes to its workers
([Kludex/uvicorn#3149](https://github.com/Kludex/uvicorn/issues/3149)), so every keep-alive
request after the first waits about 44 ms for the client's delayed ACK, whatever the app does.
`python -m tests.soak --keepalive` measures that.
"""

TITLES = {
    "persistent": "With persistence (`--appendonly yes --appendfsync always`), as the test runs it",
    "volatile": "Without persistence (measured, not asserted)",
    "keepalive": "With keep-alive connections (measured, not asserted)",
}
ORDER = ("persistent", "volatile", "keepalive")
ROLE_ORDER = ("viewer", "user", "power", "admin")
_SECTION = re.compile(r"<!-- soak:(?P<name>\w+) -->\n(?P<body>.*?)<!-- /soak:(?P=name) -->\n", re.DOTALL)


def section_name(soak: SoakRun) -> str:
    if soak.config.keepalive:
        return "keepalive"
    return "persistent" if soak.config.persistence else "volatile"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _at(soak: SoakRun, at: float) -> str:
    return f"t = {soak.since_start(at):.1f} s"


def _overview(soak: SoakRun) -> list[str]:
    load = soak.load
    latencies = [r.latency for r in load.results]
    clients = sum(len(c.users) * c.clients for c in COHORTS)
    connections = "keep-alive connections" if soak.config.keepalive else "a new connection per request"
    redis = " ".join(soak.config.redis_args) or "no persistence"
    return [
        f"Run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC: {load.seconds:.0f} s, {clients} clients "
        f"(closed loop, {connections}), uvicorn {soak.config.workers} workers, Redis {soak.redis_version} "
        f"({redis}), Python {platform.python_version()}, {os.cpu_count()} CPUs shared by everything "
        f"(load average {soak.load_average:.2f} just before).",
        "",
        f"**{len(load.results):,} requests, {load.rps:,.0f} requests/s, "
        f"p50 {_ms(percentile(latencies, 50))} ms, p99 {_ms(percentile(latencies, 99))} ms.**",
        "",
        "| role | requests | 200 | 403 | 429 | 503 | other | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(_role_row(role, stats) for role, stats in sorted(role_stats(load.results).items(), key=_role_order)),
    ]


def _role_order(item: tuple[str, RoleStats]) -> int:
    return ROLE_ORDER.index(item[0])


def _role_row(role: str, stats: RoleStats) -> str:
    named = (200, 403, 429, 503)
    other = sum(n for code, n in stats.statuses.items() if code not in named)
    counts = " | ".join(f"{stats.statuses.get(code, 0):,}" for code in named)
    return f"| {role} | {stats.requests:,} | {counts} | {other:,} | {_ms(stats.p50)} | {_ms(stats.p99)} |"


def _counts(soak: SoakRun) -> list[str]:
    oks = sum(r.status == 200 for r in soak.load.results)
    tallies = soak.tallies()
    over = [p for p in tallies if p.busiest > p.rpm]
    lines = [
        "### Calls that reached FakeClaude, against the policy",
        "",
        f"FakeClaude received {len(soak.calls):,} calls ({soak.stray_calls} unexplained); the clients got "
        f"{oks:,} responses with status 200. A call counts inside a window when FakeClaude received it; the "
        f"window checked is 60 s minus the largest client-to-FakeClaude lag ({soak.window_tolerance:.2f} s), "
        "so a count above the limit is a real over-admission, not clock jitter.",
        "",
        "| user | role | allowed in any 60 s | reached FakeClaude | most in any 60 s | 429 requests / tokens |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for p in tallies:
        flag = " **over**" if p.busiest > p.rpm else ""
        lines.append(
            f"| {p.user} | {p.role} | {p.rpm} | {p.reached} | {p.busiest}{flag} | "
            f"{p.refused_requests} / {p.refused_tokens} |"
        )
    power = [p for p in tallies if p.role == "power"]
    lines += [
        "",
        f"Power users' tokens (input + output, as FakeClaude bills them) in their busiest 60 s: "
        f"{', '.join(f'{p.user} {p.busiest_tokens:,}' for p in power)} against `tpm = {TPM['power']:,}`. "
        "TPM is a sliding-window counter (two integers per bucket, not one entry per token), so it "
        "approximates a moving window: across its window boundary it can admit up to about twice the tpm. "
        "A request refused for its tokens still takes an rpm slot (it was a request): power users' calls "
        "and token refusals share their 60 a minute, which is why they get fewer than 60 calls.",
        "",
        "**No principal exceeded its limit in any 60-second window.**"
        if not over
        else f"**Over the limit: {', '.join(f'{p.user} ({p.busiest} > {p.rpm})' for p in over)}.**",
    ]
    return lines


def _outage(soak: SoakRun) -> list[str]:
    outage = soak.outage
    during = soak.during_outage()
    codes = sorted({f"{r.status} {r.error_code}" for r in during})
    latencies = [r.latency for r in during]
    after = soak.after_recovery()
    late_503 = [r for r in after if r.status == 503]
    first_ok = min(
        (r.done_at for r in soak.load.results if r.status == 200 and r.sent_at >= outage.up_at), default=None
    )
    full, early = soak.full_at_outage(), soak.readmitted_early()
    viewers = [r for r in soak.load.results if r.role == "viewer" and outage.down_at <= r.sent_at <= outage.up_at]
    return [
        "### Redis restarted",
        "",
        f"- Stopped at {_at(soak, outage.down_at)}, started again at {_at(soak, outage.up_at)} "
        f"(same port, same data directory), answering again at {_at(soak, outage.back_at)}.",
        f"- While it was down: {len(during):,} guarded requests answered {', '.join(codes) or 'nothing'}, "
        f"p50 {_ms(percentile(latencies, 50))} ms, slowest {_ms(max(latencies, default=0))} ms; "
        f"{len(soak.admitted_during_outage())} reached FakeClaude. Viewers got "
        f"{', '.join(sorted({str(r.status) for r in viewers})) or '-'} (the route guard needs no Redis).",
        f"- After: the first 200 came back at {_at(soak, first_ok) if first_ok else 'no time (none did)'}, "
        "without restarting the app; "
        f"of the {len(after):,} guarded requests sent from a second after Redis answered, "
        f"{sum(r.status == 200 for r in after):,} got 200, {sum(r.status == 429 for r in after):,} got 429, "
        f"and {len(late_503)} got 503.",
        f"- Across the restart: {', '.join(sorted(full)) or 'nobody'} had a full window when Redis stopped that "
        f"was still full when it came back; {len(early)} of their calls reached FakeClaude before it moved on.",
    ]


def markdown(soak: SoakRun) -> str:
    """The section for this run (without its heading marker)."""
    lines = [f"## {TITLES[section_name(soak)]}", "", *_overview(soak), "", *_counts(soak), "", *_outage(soak)]
    return "\n".join(lines) + "\n"


def write_section(path: Path, soak: SoakRun) -> None:
    """Replace this run's section of ``path`` (created with the header when missing), keeping the others."""
    sections = {}
    if path.exists():
        sections = {m["name"]: m["body"] for m in _SECTION.finditer(path.read_text(encoding="utf-8"))}
    sections[section_name(soak)] = markdown(soak)
    parts = [HEADER]
    for name in ORDER:
        if name in sections:
            parts.append(f"<!-- soak:{name} -->\n{sections[name]}<!-- /soak:{name} -->\n")
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    staged.write_text("\n".join(parts), encoding="utf-8")
    staged.replace(path)  # atomic: a concurrent reader sees the old file or the new one
