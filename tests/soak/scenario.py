"""The soak: the FastAPI example under uvicorn (4 workers) on a private Redis, driven with mixed roles,
with Redis stopped a third of the way in and started again a few seconds later.

``tests/soak/test_soak.py`` runs it and asserts; ``python -m tests.soak`` runs it to measure a variant
(``--no-persistence``, ``--keepalive``) without asserting.

Redis runs with ``--appendonly yes --appendfsync always``: every counter write is on disk before
Redis answers the script that made it, so the moving windows survive a restart, even a crash
(SIGKILL) rather than the SIGTERM used here. Without persistence the restarted Redis starts
empty and every principal gets a fresh window: ``--no-persistence`` measures what that does.
Everything started here is stopped, and every key deleted, however the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from claude_rbac.testing import FakeClaude
from tests.soak.load import Cohort, LoadRun, Result, busiest_window, drive, parse_prompt
from tests.support import servers
from tests.support.redis import RedisServer, delete_prefix, unique_prefix

__all__ = ["COHORTS", "RPM", "TPM", "Call", "Outage", "Tally", "SoakConfig", "SoakRun", "run"]

POLICY = """\
version = 1
on_excess = "clamp"

[roles.viewer]
allowed = false

[roles.user]
inherits = ["viewer"]
models = ["claude-haiku-*"]
max_tokens = 128
rpm = 30

[roles.power]
inherits = ["user"]
models = ["claude-sonnet-*", "claude-opus-*"]
max_tokens = 256
rpm = 60
tpm = 1200

[roles.admin]
inherits = ["power"]
max_tokens = 1024
rpm = 300
tpm = 1000000
"""
RPM = {"viewer": 0, "user": 30, "power": 60, "admin": 300}
"""Calls each principal of the role may make in any 60 seconds (the policy above)."""
TPM = {"power": 1200}

COHORTS = (
    Cohort("viewer", ("vera", "vera2"), clients=1),
    Cohort("user", ("uma", "uma2"), clients=2),
    Cohort("user", ("uma3", "uma4"), clients=1, think=0.8),
    Cohort("power", ("paul",), clients=2),
    Cohort("power", ("paul2", "paul3"), clients=1, think=0.4),
    Cohort("admin", ("ada", "ada2"), clients=2),
)
"""Some clients send as fast as answers come (their window fills in the first seconds); paced ones
fill theirs over half a minute, so their admissions straddle the outage."""
BUILTIN_USERS = ("vera", "uma", "paul", "ada")
FAKE_DELAY = 0.01
OUTPUT_TOKENS = 40
WINDOW = 60.0


def passes_route_guard(role: str, route: str) -> bool:
    """Whether the role gets past the route's guard (and so to the governed client, which needs Redis)."""
    return role in ("power", "admin") or (role == "user" and route != "long")


@dataclass(frozen=True)
class SoakConfig:
    seconds: float = 60.0
    persistence: bool = True
    max_requests: int = 200_000
    workers: int = 4
    keepalive: bool = False
    """Reuse each client's connection. Off by default: with ``--workers N``, uvicorn 0.54 leaves Nagle's
    algorithm on (Kludex/uvicorn#3149) and every keep-alive request past the first waits ~44 ms for a
    delayed ACK, which would measure uvicorn's bug instead of the app."""

    @property
    def outage_at(self) -> float:
        """Seconds into the run when Redis is stopped."""
        return self.seconds / 3

    @property
    def outage_seconds(self) -> float:
        return min(4.0, self.seconds / 10)

    @property
    def redis_args(self) -> list[str]:
        return ["--appendonly", "yes", "--appendfsync", "always"] if self.persistence else []


@dataclass
class Outage:
    down_at: float = 0.0
    """The old redis-server process had exited."""
    up_at: float = 0.0
    """Just before the new one was started: Redis was down from ``down_at`` to here."""
    back_at: float = 0.0
    """The new one answered PING."""


@dataclass(frozen=True)
class Call:
    """One request FakeClaude received, matched to the load generator's request by its prompt."""

    user: str
    seq: int
    received_at: float
    tokens: int
    """Input tokens plus output tokens, as FakeClaude bills them."""


@dataclass(frozen=True)
class Tally:
    """What one signed-in user sent and got, against its role's limit."""

    user: str
    role: str
    rpm: int
    reached: int
    """Calls of this user that FakeClaude received."""
    busiest: int
    """The most of them within any (60 - tolerance) seconds: never more than ``rpm``."""
    refused_requests: int
    refused_tokens: int
    busiest_tokens: int


@dataclass
class SoakRun:
    """Everything a soak measured, and the questions the test and the report ask of it."""

    config: SoakConfig
    load: LoadRun
    calls: list[Call]
    stray_calls: int
    """Requests at FakeClaude that no generated prompt explains (should be none)."""
    outage: Outage
    redis_version: str
    roles: dict[str, str] = field(default_factory=dict)
    load_average: float = 0.0
    """The machine's 1-minute load average just before the run: above ~0.5, something else was running."""

    def since_start(self, at: float) -> float:
        return at - self.load.started_at

    def admission_lag(self) -> float:
        """The longest time from a client sending a request to FakeClaude receiving its call."""
        sent = {r.seq: r.sent_at for r in self.load.results}
        return max((call.received_at - sent[call.seq] for call in self.calls if call.seq in sent), default=0.0)

    @property
    def window_tolerance(self) -> float:
        """How much shorter than 60 s the checked window is, so that checking receipt times is sound.

        The limit holds on the times the workers admitted calls; FakeClaude sees each call a little
        later (0 <= delay <= admission lag). Over receipt times, N+1 calls inside (60 - the largest
        lag) seconds prove N+1 admissions inside 60 seconds: a real over-admission, never a timing artefact.
        """
        return self.admission_lag() + 0.01

    def tallies(self) -> list[Tally]:
        tolerance = self.window_tolerance
        out = []
        for user, role in self.roles.items():
            calls = [call for call in self.calls if call.user == user]
            times = [call.received_at for call in calls]
            refused = [r.limit for r in self.load.results if r.user == user and r.status == 429]
            out.append(
                Tally(
                    user,
                    role,
                    RPM[role],
                    len(calls),
                    int(busiest_window(times, WINDOW - tolerance)),
                    refused.count("requests"),
                    refused.count("tokens"),
                    int(busiest_window(times, WINDOW, [call.tokens for call in calls])),
                )
            )
        return out

    def guarded(self) -> list[Result]:
        """Requests that got past their route guard: each one needs Redis to be counted."""
        return [r for r in self.load.results if passes_route_guard(r.role, r.route)]

    def during_outage(self) -> list[Result]:
        """Guarded requests sent after Redis had stopped and answered before it was started again."""
        down, up = self.outage.down_at, self.outage.up_at
        return [r for r in self.guarded() if r.sent_at >= down and r.done_at <= up]

    def admitted_during_outage(self) -> list[Call]:
        """Calls FakeClaude received while Redis was down, for requests sent while it was down."""
        down, up = self.outage.down_at, self.outage.up_at
        sent = {r.seq: r.sent_at for r in self.load.results}
        return [c for c in self.calls if down <= c.received_at <= up and sent.get(c.seq, 0.0) >= down]

    def full_at_outage(self) -> dict[str, float]:
        """Users whose window was full when Redis stopped and still is when it came back: when it moves on.

        That is the oldest of their last ``rpm`` calls, plus 60 s.
        """
        frees = {}
        for user, role in self.roles.items():
            rpm = RPM[role]
            before = sorted(c.received_at for c in self.calls if c.user == user and c.received_at < self.outage.down_at)
            if rpm and len(before) >= rpm and before[-rpm] + WINDOW > self.outage.back_at:
                frees[user] = before[-rpm] + WINDOW
        return frees

    def readmitted_early(self) -> list[Call]:
        """Calls after the restart for those users, before their window moved on: what losing the counters shows."""
        until = {user: frees_at - self.window_tolerance for user, frees_at in self.full_at_outage().items()}
        return [c for c in self.calls if self.outage.down_at <= c.received_at < until.get(c.user, 0.0)]

    def after_recovery(self, grace: float = 1.0) -> list[Result]:
        """Guarded requests sent from ``grace`` seconds after Redis answered again."""
        return [r for r in self.guarded() if r.sent_at >= self.outage.back_at + grace]


def _calls(fake: FakeClaude) -> tuple[list[Call], int]:
    calls, stray = [], 0
    for request in fake.calls():
        body = request.json if isinstance(request.json, dict) else {}
        messages = body.get("messages") or [{}]
        parsed = parse_prompt(str(messages[0].get("content", "")))
        if parsed is None:
            stray += 1
            continue
        tokens = fake.input_tokens(body) + min(int(body["max_tokens"]), fake.output_tokens)
        calls.append(Call(parsed[0], parsed[1], request.received_at, tokens))
    return calls, stray


async def _soak(url: str, config: SoakConfig, server: RedisServer, outage: Outage) -> LoadRun:
    async def restart_redis() -> None:
        await asyncio.sleep(config.outage_at)
        await asyncio.to_thread(server.stop)
        outage.down_at = time.time()
        await asyncio.sleep(config.outage_seconds)
        outage.up_at = time.time()
        await asyncio.to_thread(server.start)
        outage.back_at = time.time()

    chaos = asyncio.create_task(restart_redis())
    try:
        load = await drive(
            url, COHORTS, seconds=config.seconds, max_requests=config.max_requests, keepalive=config.keepalive
        )
    except BaseException:
        chaos.cancel()  # asyncio.run still waits for a stop/start already running in its thread
        raise
    await chaos
    return load


def _forget_keys(url: str, prefix: str) -> None:
    # The server is private and its data directory is deleted with it; this empties it first anyway.
    with contextlib.suppress(redis.RedisError):
        delete_prefix(url, prefix)


def extra_users() -> dict[str, str]:
    return {user: cohort.role for cohort in COHORTS for user in cohort.users if user not in BUILTIN_USERS}


@contextlib.contextmanager
def _stack(config: SoakConfig) -> Iterator[tuple[str, RedisServer, FakeClaude]]:
    """The running parts, torn down in reverse order (uvicorn, FakeClaude, keys, Redis, files)."""
    prefix = unique_prefix()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="claude-rbac-soak-")))
        policy = tmp / "rbac.toml"
        policy.write_text(POLICY)
        server = RedisServer()
        server.extra = config.redis_args
        stack.enter_context(server)
        stack.callback(_forget_keys, server.url, prefix)
        fake = stack.enter_context(FakeClaude(delay=FAKE_DELAY, output_tokens=OUTPUT_TOKENS))
        env = {
            "ANTHROPIC_BASE_URL": fake.url,
            "ANTHROPIC_API_KEY": "",
            "CLAUDE_RBAC_STORAGE": f"{server.url}/0",
            "CLAUDE_RBAC_KEY_PREFIX": prefix,
            "CLAUDE_RBAC_POLICY": str(policy),
            "CLAUDE_RBAC_DEMO_EXTRA_USERS": ",".join(f"{user}={role}" for user, role in extra_users().items()),
        }
        url = stack.enter_context(servers.uvicorn("examples.fastapi_app:app", env, workers=config.workers))
        yield url, server, fake


def redis_version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False).stdout
    return next((part.removeprefix("v=") for part in out.split() if part.startswith("v=")), "unknown")


def run(config: SoakConfig) -> SoakRun:
    """Start everything, drive it for ``config.seconds`` with Redis restarted at a third, and stop everything."""
    outage = Outage()
    load_average = os.getloadavg()[0]
    with _stack(config) as (url, server, fake):
        load = asyncio.run(_soak(url, config, server, outage))
        calls, stray = _calls(fake)
    roles = {user: cohort.role for cohort in COHORTS for user in cohort.users}
    return SoakRun(config, load, calls, stray, outage, redis_version(), roles, load_average)
