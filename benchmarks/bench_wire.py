"""Over the wire: requests/s with wrk against gunicorn (Flask) and uvicorn (Starlette), and the CPU a request costs.

Two parts, each with every variant of ``benchmarks/wire_apps.py`` served at once (one worker each, on
127.0.0.1) and the load runs interleaved over rounds, so machine noise hits them alike:

* **The governed call matrix** (Flask under gunicorn, one sync worker): a route that makes one Claude call,
  answered in-process, with a plain SDK client (twice: the A/A control, which shows the noise band) and
  with the governed client, for 1,000 and 100,000 rotating users, with RPM only, RPM+TPM+budget and (once
  the policy has it) RPM+TPM+spend, on memory and on Redis. Beside requests/s, the CPU per request measured
  inside the worker (``time.process_time()`` deltas, every thread of the process included, over the requests
  the worker counted) and the context switches of the worker's other threads per request (a thread woken per
  call shows there). Each case is measured against the plain-call route of its user count in rounds of
  short bursts, ``plain, case, case, plain``: on a shared VM the CPU a worker spends per request drifts
  over seconds by more than the tens of µs the targets are about, and bursts a second apart see the same
  drift. Its ratio and added CPU are the medians of the rounds' own. Before the rounds of a 100,000-user
  case every user gets a live window (``POST /_prefill``, untimed), so they are all active users of the
  storage while it runs (the rounds end within the minute the windows last).
* **Guards and their peers**: requests/s of a bare route, Flask-Limiter/slowapi and claude_rbac's guard (and,
  for Starlette, the calls too).

With ``taskset`` and two cores or more, the servers run on CPU 1 and wrk on CPU 0: a worker that the
scheduler moves between cores, or that shares one with its load, reads tens of µs noisier per request.

Needs ``wrk`` (Debian's package; ``make bench`` installs it when it can); without it a small Python load
generator stands in (its requests/s are the client's, not the server's; the CPU per request is still right).

Run: ``.venv/bin/python -m benchmarks.bench_wire`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.support.redis import delete_prefix, free_port
from tests.support.servers import server

from benchmarks.wire_apps import LIMITS, REDIS, ROLE

BIN = Path(sys.executable).parent
CONNECTIONS = 16
VARIANTS = ["bare", "peer-memory", "peer-redis", "guard", "bare-call", "guard-call-memory", "guard-call-redis"]
FLASK_GUARDS = ["bare", "peer-memory", "peer-redis", "guard"]
"""The Flask guard table: its calls are measured by the matrix."""
PEER = {"flask": "Flask-Limiter", "starlette": "slowapi"}
LABELS = {
    "bare": "bare route",
    "peer-memory": "{peer} (memory)",
    "peer-redis": "{peer} (Redis)",
    "guard": "claude_rbac guard",
    "bare-call": "bare route + plain SDK call (in-process answer)",
    "guard-call-memory": "claude_rbac guard + governed call (memory)",
    "guard-call-redis": "claude_rbac guard + governed call (Redis)",
}
LIMIT_LABELS = {"rpm": "RPM", "tokens": "RPM+TPM+budget", "spend": "RPM+TPM+spend"}
USER_COUNTS = (1_000, 100_000)
MATRIX_ROUNDS = {False: (8, 1.0), True: (2, 1.0)}
"""(rounds, seconds a burst) of the governed call matrix, full and ``--quick`` (wrk runs whole seconds)."""
PINNED = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
"""Servers on CPU 1, the load on CPU 0 (see the module's docstring)."""


def _on(cpu: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if PINNED else argv


def _argv(framework: str, port: int) -> list[str]:
    if framework == "flask":
        return [
            str(BIN / "gunicorn"),
            "--workers",
            "1",
            "--timeout",
            "300",  # a 100,000-user prefill on Redis takes a while
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "benchmarks.wire_apps:flask_app",
        ]
    return [
        str(BIN / "uvicorn"),
        "benchmarks.wire_apps:starlette_app",
        "--workers",
        "1",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


@contextlib.contextmanager
def serving(framework: str, envs: dict[str, dict[str, str]]) -> Iterator[dict[str, str]]:
    """Every variant (name -> its environment) served at once; yields name -> URL."""
    with contextlib.ExitStack() as stack:
        urls = {}
        for name, own in envs.items():
            port = free_port()
            env = {"BENCH_FRAMEWORK": framework, **own}
            urls[name] = stack.enter_context(server(_on(1, _argv(framework, port)), port, env, ready_path="/chat"))
        yield urls


def _cookie(url: str) -> str:
    response = httpx.post(f"{url}/login", data={"username": "uma"})
    response.raise_for_status()
    return f"session={response.cookies['session']}"


# -- load -------------------------------------------------------------------------------------------------


def wrk(url: str, cookie: str, seconds: float, connections: int = CONNECTIONS) -> float:
    out = subprocess.run(
        _on(0, ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-H", f"Cookie: {cookie}", f"{url}/chat"]),
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"{url}: non-2xx responses under load:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match is not None, out
    return float(match.group(1))


def pyload(url: str, cookie: str, seconds: float, connections: int = 4) -> float:
    """wrk's stand-in: keep-alive connections in threads, each sending GET /chat back to back."""
    host, port = url.removeprefix("http://").split(":")
    deadline = time.monotonic() + seconds
    done = [0] * connections
    failed: list[int] = []

    def run(slot: int) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        while time.monotonic() < deadline:
            connection.request("GET", "/chat", headers={"Cookie": cookie})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failed.append(response.status)
                return
            done[slot] += 1
        connection.close()

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        raise RuntimeError(f"{url}: non-2xx responses under load: {failed[:5]}")
    return sum(done) / (time.monotonic() - started)


def load(url: str, cookie: str, seconds: float) -> float:
    return wrk(url, cookie, seconds) if shutil.which("wrk") else pyload(url, cookie, seconds)


def load_name() -> str:
    name = f"wrk -t1 -c{CONNECTIONS}" if shutil.which("wrk") else "a Python load generator (4 connections; wrk absent)"
    return f"{name}, servers on CPU 1 and wrk on CPU 0" if PINNED else name


# -- the governed call matrix --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    label: str
    env: dict[str, str]
    users: int = 0
    storage: str = ""
    limits: str = ""

    @property
    def governed(self) -> bool:
        return bool(self.storage)


@dataclass
class Sample:
    rps: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    switches: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    """Per round: requests/s against the plain call's in the same round."""
    added_us: list[float] = field(default_factory=list)
    """Per round: CPU per request minus the plain call's in the same round."""


@dataclass(frozen=True)
class Burst:
    """One load run against one route: what the worker counted."""

    rps: float
    cpu: float
    served: int
    switches: float


@dataclass
class Matrix:
    """The matrix's samples, and the facts the targets are computed from."""

    cases: list[Case]
    samples: dict[str, Sample]
    notes: list[str]

    def rps(self, name: str) -> float:
        return statistics.median(self.samples[name].rps)

    def cpu(self, name: str) -> float:
        return statistics.median(self.samples[name].cpu_us)

    def switches(self, name: str) -> float:
        return statistics.median(self.samples[name].switches)

    def control(self, users: int) -> str:
        return f"plain-{users}"

    def ratio(self, name: str) -> float:
        """Requests/s against the plain call's: the median of the rounds' ratios."""
        ratios = self.samples[name].ratios
        return statistics.median(ratios) if ratios else 1.0

    def added_cpu(self, name: str) -> float:
        """CPU per request over the plain call's: the median of the rounds' differences."""
        added = self.samples[name].added_us
        return statistics.median(added) if added else 0.0

    def added_quartiles(self, name: str) -> tuple[float, float]:
        added = self.samples[name].added_us
        if len(added) < 2:
            return (self.added_cpu(name),) * 2
        low, _, high = statistics.quantiles(added, n=4)
        return low, high

    def find(self, storage: str, limits: str, users: int) -> str | None:
        for case in self.cases:
            if (case.storage, case.limits, case.users) == (storage, limits, users):
                return case.name
        return None


def spend_policy_known() -> bool:
    """Whether the policy takes ``spend = { day = ... }`` on a role yet (spend limits in dollars)."""
    from claude_rbac import Policy, PolicyError

    try:
        Policy.from_dict({"roles": {"user": {**ROLE, **LIMITS["spend"]}}})
    except PolicyError:
        return False
    return True


def matrix_cases(users: int, prefix: str, *, spend: bool) -> list[Case]:
    cases = [
        Case(f"plain-{users}", "plain SDK call", {"BENCH_VARIANT": "plain-call"}, users),
        Case(f"again-{users}", "plain SDK call, again (A/A)", {"BENCH_VARIANT": "plain-call-again"}, users),
        Case(
            f"guarded-{users}",
            "guard + plain SDK call",
            {"BENCH_VARIANT": "guarded-plain-call", "BENCH_USERS": str(users)},  # a decision per rotating user
            users,
        ),
        Case(
            f"ping-{users}",
            "plain SDK call + one Redis PING (the Redis floor)",
            {"BENCH_VARIANT": "plain-call-redis"},
            users,
        ),
    ]
    for storage in ("memory", "redis"):
        for limits in ("rpm", "tokens", "spend"):
            if limits == "spend" and not spend:
                continue
            env = {
                "BENCH_VARIANT": "governed",
                "BENCH_STORAGE": storage,
                "BENCH_LIMITS": limits,
                "BENCH_USERS": str(users),
                "BENCH_KEY_PREFIX": f"{prefix}-{storage}-{limits}-{users}",
            }
            label = f"guard + governed call, {LIMIT_LABELS[limits]}, {'Redis' if storage == 'redis' else 'memory'}"
            cases.append(Case(f"{storage}-{limits}-{users}", label, env, users, storage, limits))
    return cases


def _counters(url: str) -> dict[str, float]:
    return dict(httpx.get(f"{url}/_cpu", timeout=30).json())


def _burst(url: str, cookie: str, seconds: float) -> Burst:
    before = _counters(url)
    rps = load(url, cookie, seconds)
    after = _counters(url)
    served = int(after["served"] - before["served"]) - 1  # the /_cpu read itself is counted once
    return Burst(rps, after["cpu"] - before["cpu"], served, after["switches"] - before["switches"])


def _paired(
    plain: tuple[str, str], case: tuple[str, str], rounds: int, seconds: float, base: Sample, sample: Sample
) -> None:
    """``rounds`` rounds of ``plain, case, case, plain`` bursts (url, cookie each); each round's ratio and
    added CPU come from its own four bursts."""
    for _ in range(rounds):
        bursts: dict[int, list[Burst]] = {0: [], 1: []}
        for which in (0, 1, 1, 0):
            bursts[which].append(_burst(*(plain, case)[which], seconds))
        rps, cpu = {}, {}
        for which, target in ((0, base), (1, sample)):
            runs = bursts[which]
            served = sum(run.served for run in runs)
            rps[which] = statistics.mean(run.rps for run in runs)
            cpu[which] = sum(run.cpu for run in runs) / served * 1e6
            target.rps.append(rps[which])
            target.cpu_us.append(cpu[which])
            target.switches.append(sum(run.switches for run in runs) / served)
        sample.ratios.append(rps[1] / rps[0])
        sample.added_us.append(cpu[1] - cpu[0])


def measure_matrix(rounds: int, seconds: float, user_counts: Sequence[int] = USER_COUNTS) -> Matrix:
    """Each user count on its own: its routes served together, each case paired with the plain call."""
    spend = spend_policy_known()
    notes = [] if spend else ["RPM+TPM+spend: skipped, the policy has no `spend` key yet."]
    prefix = f"wire-{uuid.uuid4().hex[:8]}"
    cases: list[Case] = []
    samples: dict[str, Sample] = {}
    try:
        for users in user_counts:
            group = matrix_cases(users, prefix, spend=spend)
            cases += group
            with serving("flask", {case.name: case.env for case in group}) as urls:
                cookies = {name: _cookie(url) for name, url in urls.items()}
                for case in group:  # prove each route answers 200 for uma, and warm it up
                    url = urls[case.name]
                    assert httpx.get(f"{url}/chat", headers={"Cookie": cookies[case.name]}).status_code == 200
                    load(url, cookies[case.name], 1)
                    samples[case.name] = Sample()
                control = group[0]
                plain = (urls[control.name], cookies[control.name])
                for case in group[1:]:
                    url = urls[case.name]
                    if case.governed and case.users > 1_000:  # every user active: a live window each
                        httpx.post(f"{url}/_prefill", timeout=600).raise_for_status()
                    _paired(
                        plain, (url, cookies[case.name]), rounds, seconds, samples[control.name], samples[case.name]
                    )
    finally:
        with contextlib.suppress(Exception):
            delete_prefix(REDIS, prefix)
    return Matrix(cases, samples, notes)


def matrix_table(matrix: Matrix) -> str:
    lines = [
        "| route | users | requests/s median | min | max | vs plain call | CPU µs/request | added CPU µs "
        "| its quartiles | other threads' switches/request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in matrix.cases:
        sample = matrix.samples[case.name]
        rps = matrix.rps(case.name)
        low, high = matrix.added_quartiles(case.name)
        lines.append(
            f"| {case.label} | {case.users:,} | {rps:,.0f} | {min(sample.rps):,.0f} | {max(sample.rps):,.0f} "
            f"| {matrix.ratio(case.name):.2f}x | {matrix.cpu(case.name):,.0f} | {matrix.added_cpu(case.name):+,.0f} "
            f"| {low:+,.0f}..{high:+,.0f} | {matrix.switches(case.name):.2f} |"
        )
    return "\n\n".join(["\n".join(lines), *matrix.notes])


# -- guards and their peers -------------------------------------------------------------------------------


def measure(framework: str, rounds: int = 3, seconds: float = 3, variants: Sequence[str] = VARIANTS) -> str:
    with serving(framework, {variant: {"BENCH_VARIANT": variant} for variant in variants}) as urls:
        cookies = {variant: _cookie(url) for variant, url in urls.items()}
        for variant, url in urls.items():  # warm up, and prove each route answers 200 for uma
            assert httpx.get(f"{url}/chat", headers={"Cookie": cookies[variant]}).status_code == 200, variant
            load(url, cookies[variant], 1)
        samples: dict[str, list[float]] = {variant: [] for variant in variants}
        for _ in range(rounds):
            for variant, url in urls.items():
                samples[variant].append(load(url, cookies[variant], seconds))
    bare = statistics.median(samples["bare"])
    bare_call = statistics.median(samples["bare-call"]) if "bare-call" in samples else bare
    lines = ["| route | requests/s median | min | max | vs its bare route |", "| --- | ---: | ---: | ---: | ---: |"]
    for variant in variants:
        values = samples[variant]
        base = bare_call if "call" in variant else bare
        label = LABELS[variant].format(peer=PEER[framework])
        lines.append(
            f"| {label} | {statistics.median(values):,.0f} | {min(values):,.0f} | {max(values):,.0f} | "
            f"{statistics.median(values) / base:.2f}x |"
        )
    return "\n".join(lines)


def main(quick: bool = False) -> tuple[str, Matrix]:
    """The markdown of every over-the-wire table, and the matrix (for the targets)."""
    rounds, seconds = MATRIX_ROUNDS[quick]
    matrix = measure_matrix(rounds, seconds)
    guard_rounds, guard_seconds = (1, 1.0) if quick else (3, 3.0)
    text = "\n\n".join(
        [
            f"### The governed call, Flask under gunicorn (1 sync worker), {load_name()}, "
            f"{rounds} rounds of plain, case, case, plain, {seconds:g} s each",
            "Claude answers in-process. CPU is the worker's own (`time.process_time()`, all its threads) per request "
            "it served. Each case's ratio and added CPU are the medians of its rounds', each round against the "
            "plain call's bursts around it (the plain row gathers them all); the A/A row is a second plain-call "
            "route, identical to the first: the noise band.",
            matrix_table(matrix),
            f"### gunicorn (1 sync worker), Flask: requests/s with {load_name()}",
            measure("flask", guard_rounds, guard_seconds, FLASK_GUARDS),
            f"### uvicorn (1 worker, h11, asyncio), Starlette: requests/s with {load_name()}",
            measure("starlette", guard_rounds, guard_seconds),
        ]
    )
    return text, matrix


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_wire")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--matrix", action="store_true", help="the governed call matrix only")
    args = parser.parse_args()
    if args.matrix:
        print(matrix_table(measure_matrix(*MATRIX_ROUNDS[args.quick])))
    else:
        print(main(args.quick)[0])
