"""What Redis costs a governed call: round trips per call, and the added latency against memory.

Run: ``.venv/bin/python -m benchmarks.bench_redis`` (needs the Redis at 127.0.0.1:6379).
"""

from __future__ import annotations

import math
import resource
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import redis
from tests.support.redis import RedisServer
from tests.support.tcp_proxy import TcpProxy

from benchmarks import harness
from claude_rbac import RBAC, Principal
from claude_rbac.quota import Quota

KEY = "sk-ant-api03-benchmark-key-000000000000000000000000000000-BNCH"
PROMPT = "Hello"
MESSAGES = [{"role": "user", "content": PROMPT}]
RPM = {"models": ["claude-haiku-*"], "max_tokens": 10, "rpm": 10**6}
RPM_TPM_BUDGET = {**RPM, "tpm": 10**12, "budget": {"day": 10**12}}
REDIS = "redis://127.0.0.1:6379/0"


def exact(body: Mapping[str, Any]) -> int:
    return math.ceil(len(PROMPT) / 4)


def _admissions(storage: str, role: dict[str, Any]) -> harness.Callable[[int], None]:
    """n admissions of one governed call's buckets (what the middleware does before sending)."""
    rbac = RBAC({"roles": {"user": role}}, storage=storage, key_prefix=f"bench-{uuid.uuid4().hex[:8]}", api_key=KEY)
    policy_role = rbac.policy.roles["user"]
    buckets = rbac.quota.buckets(
        role="user",
        principal_id="alice",
        rpm=policy_role.rpm,
        tpm=policy_role.tpm,
        budget_day=policy_role.budget.day,
        tokens=20 if policy_role.tpm else 0,
    )

    def run(n: int) -> None:
        for _ in range(n):
            rbac.quota.acquire(buckets)

    return run


def latency_cases() -> list[harness.Case]:
    return [
        harness.Case("redis", "admission, memory (RPM)", _admissions("memory://", RPM)),
        harness.Case("redis", "admission, memory (RPM+TPM+budget)", _admissions("memory://", RPM_TPM_BUDGET)),
        harness.Case("redis", "admission, Redis (RPM)", _admissions(REDIS, RPM)),
        harness.Case("redis", "admission, Redis (RPM+TPM+budget)", _admissions(REDIS, RPM_TPM_BUDGET)),
        harness.Case("redis", "bare Redis PING (one round trip)", _pings()),
    ]


def _pings() -> harness.Callable[[int], None]:
    client = redis.Redis.from_url(REDIS)

    def run(n: int) -> None:
        for _ in range(n):
            client.ping()

    return run


def round_trips(url_of_fake: str, calls: int = 200) -> list[tuple[str, float, float]]:
    """(case, round trips per call, scripts per call) through a counting proxy, settlements included.

    With the exact estimate nothing is settled; with the default (high) one every call gives tokens back,
    and the give-backs ride the next call's script.
    """
    rows = []
    cases = (
        ("RPM", RPM, exact),
        ("RPM+TPM+budget", RPM_TPM_BUDGET, exact),
        ("RPM+TPM+budget, each call settling", RPM_TPM_BUDGET, None),
        # Dollars: each call reserves its worst case and gives back the difference; the ledger's write (at most
        # one a second per principal, off the request path) goes through the same proxy and is counted too.
        ("RPM+TPM+budget+spend, each call settling", {**RPM_TPM_BUDGET, "spend": {"day": 10**6}}, exact),
    )
    with RedisServer() as server, TcpProxy("127.0.0.1", server.port) as proxy:
        for name, role, estimator in cases:
            rbac = RBAC(
                {"roles": {"user": role}},
                storage=proxy.url(),
                api_key=KEY,
                base_url=url_of_fake,
                token_estimator=estimator,
            )
            client = rbac.client(Principal("alice", "user"))
            client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
            rbac.flush()
            stats = redis.Redis.from_url(server.url)
            stats.config_resetstat()
            proxy.reset()
            for _ in range(calls):
                client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
            trips = proxy.round_trips  # the last call's give-backs still wait for a next call
            evalsha = stats.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
            rows.append((name, trips / calls, evalsha / calls))
            rbac.close()
    return rows


def cpu_per_call(cycles: int = 2000) -> list[tuple[str, float, float, float]]:
    """(storage, CPU µs, context switches, threads started) per admission + settlement of RPM, TPM and a budget.

    CPU is this process's (the client side); every cycle gives tokens back.
    """
    rows = []
    for name, uri in (("memory", "memory://"), ("Redis", REDIS)):
        quota = Quota(uri, key_prefix=f"bench-{uuid.uuid4().hex[:8]}")
        buckets = quota.buckets(role="user", principal_id="alice", rpm=10**9, tpm=10**12, budget_day=10**12, tokens=500)
        for _ in range(200):
            quota.settle(quota.acquire(buckets), 100)
        quota.flush()
        threads = {thread.ident for thread in threading.enumerate()}
        before, cpu = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
        for _ in range(cycles):
            quota.settle(quota.acquire(buckets), 100)
        cpu, after = time.process_time() - cpu, resource.getrusage(resource.RUSAGE_SELF)
        started = len({thread.ident for thread in threading.enumerate()} - threads)
        switches = after.ru_nvcsw - before.ru_nvcsw + after.ru_nivcsw - before.ru_nivcsw
        rows.append((name, cpu / cycles * 1e6, switches / cycles, started / cycles))
        quota.close()
    return rows


def main() -> str:
    out = [
        "### Admission cost, memory against Redis on loopback (µs per call)",
        harness.table(harness.measure(latency_cases())),
    ]
    with harness.fake_claude_process() as url:
        lines = ["| buckets per call | Redis round trips per call | Lua scripts per call |", "| --- | ---: | ---: |"]
        lines += [f"| {name} | {trips:.2f} | {scripts:.2f} |" for name, trips, scripts in round_trips(url)]
    out += ["### Redis round trips per governed call (200 calls through a counting TCP proxy)", "\n".join(lines)]
    lines = ["| storage | CPU µs per call | context switches per call | threads started per call |"]
    lines += ["| --- | ---: | ---: | ---: |"]
    lines += [f"| {name} | {cpu:.1f} | {cs:.2f} | {th:.3f} |" for name, cpu, cs, th in cpu_per_call()]
    out += ["### The quota's own cost per call (admission + settlement, RPM+TPM+budget)", "\n".join(lines)]
    return "\n\n".join(out)


if __name__ == "__main__":
    print(main())
