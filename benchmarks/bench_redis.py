"""What Redis costs a governed call: round trips per call, and the added latency against memory.

Run: ``.venv/bin/python -m benchmarks.bench_redis`` (needs the Redis at 127.0.0.1:6379).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from typing import Any

import redis
from tests.support.redis import RedisServer
from tests.support.tcp_proxy import TcpProxy

from benchmarks import harness
from claude_rbac import RBAC, Principal

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
    """(case, round trips per call on the request path, evalsha per call) through a counting proxy."""
    rows = []
    with RedisServer() as server, TcpProxy("127.0.0.1", server.port) as proxy:
        for name, role in (("RPM", RPM), ("RPM+TPM+budget", RPM_TPM_BUDGET)):
            rbac = RBAC(
                {"roles": {"user": role}}, storage=proxy.url(), api_key=KEY, base_url=url_of_fake, token_estimator=exact
            )
            client = rbac.client(Principal("alice", "user"))
            client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
            stats = redis.Redis.from_url(server.url)
            stats.config_resetstat()
            proxy.reset()
            for _ in range(calls):
                client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
            rbac.flush()
            evalsha = stats.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
            rows.append((name, proxy.round_trips / calls, evalsha / calls))
            rbac.close()
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
    return "\n\n".join(out)


if __name__ == "__main__":
    print(main())
