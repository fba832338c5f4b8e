"""Every limits Redis URI, sync and async: a real three-node cluster and a real sentinel."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import Iterator

import pytest
import redis

from claude_rbac import RBAC, Principal, RateLimited
from claude_rbac.quota import Quota, SpendLedger
from claude_rbac.quota._ledger import LedgerQueue
from claude_rbac.testing import FakeClaude
from tests.support.redis import RedisCluster, RedisSentinel

KEY = "sk-ant-api03-topology-tests-0000000000000000000000000000-TOPO"
MESSAGES = [{"role": "user", "content": "hi"}]
POLICY = {
    "roles": {
        "user": {"models": ["claude-haiku-*"], "max_tokens": 20, "rpm": 3, "tpm": 10_000, "budget": {"day": 100_000}}
    }
}

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


@pytest.fixture(scope="module")
def running_cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as running:
        yield running


@pytest.fixture
def cluster(running_cluster: RedisCluster) -> str:
    return running_cluster.url


@pytest.fixture(scope="module")
def sentinel() -> Iterator[str]:
    with RedisSentinel() as running:
        yield running.url


@pytest.fixture(params=["cluster", "sentinel"])
def topology(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


def test_sync(topology: str, fake_claude: FakeClaude, key_prefix: str) -> None:
    rbac = RBAC(POLICY, storage=topology, key_prefix=key_prefix, api_key=KEY, base_url=fake_claude.url)
    client = rbac.client(Principal("alice", "user"))
    for _ in range(3):
        client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=MESSAGES)
    with pytest.raises(RateLimited):
        client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=MESSAGES)
    assert fake_claude.count() == 3
    assert rbac.flush()
    rbac.close()


def test_async_derived_uri(topology: str, fake_claude: FakeClaude, key_prefix: str) -> None:
    rbac = RBAC(POLICY, storage=topology, key_prefix=key_prefix, api_key=KEY, base_url=fake_claude.url)
    assert rbac.quota._async_uri == f"async+{topology}"

    async def main() -> list[str]:
        client = rbac.async_client(Principal("bob", "user"))

        async def one() -> str:
            try:
                await client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=MESSAGES)
            except RateLimited:
                return "limited"
            return "ok"

        results = await asyncio.gather(*(one() for _ in range(10)))
        await rbac.aclose()
        return results

    outcomes = asyncio.run(main())
    assert outcomes.count("ok") == 3
    assert fake_claude.count() == 3


def test_a_refusal_by_one_hash_tag_takes_nothing_from_another(topology: str, key_prefix: str) -> None:
    # The principal's rpm and the role pool's tpm live under two hash tags: on a cluster, two script calls.
    quota = Quota(topology, key_prefix=key_prefix)
    buckets = quota.buckets(role="user", principal_id="carol", rpm=2, pool_tpm=100, tokens=80)
    quota.acquire(buckets)
    with pytest.raises(RateLimited):
        quota.acquire(buckets)  # the rpm admits, the pool refuses: the rpm entry is given back
    # so the rpm of 2 still has room for one call (it would not, had the refused call kept its entry)
    quota.acquire(quota.buckets(role="user", principal_id="carol", rpm=2, pool_tpm=100, tokens=10))
    with pytest.raises(RateLimited) as refused:
        quota.acquire(quota.buckets(role="user", principal_id="carol", rpm=2, tokens=0))
    assert "tokens" not in refused.value.message  # now the rpm is what refuses
    quota.close()


def test_a_cluster_call_is_one_script_call_per_hash_tag(running_cluster: RedisCluster, key_prefix: str) -> None:
    nodes = [redis.Redis(port=node.port) for node in running_cluster.nodes]

    def script_calls() -> int:
        return sum(node.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0) for node in nodes)

    quota = Quota(running_cluster.url, key_prefix=key_prefix)
    own = quota.buckets(role="user", principal_id="dan", rpm=100, tpm=10_000, budget_day=10**6, tokens=10)
    pooled = quota.buckets(role="user", principal_id="dan", rpm=100, tpm=10_000, pool_tpm=10**6, tokens=10)
    quota.acquire(own)  # loads the script on every node
    before = script_calls()
    for _ in range(10):
        quota.acquire(own)
    assert script_calls() - before == 10  # rpm, tpm and budget share the principal's tag: one call
    before = script_calls()
    for _ in range(10):
        quota.acquire(pooled)
    assert script_calls() - before == 20  # and the pool's tag is a second
    quota.close()
    for node in nodes:
        node.close()


def test_a_ledger_drain_is_one_script_call_per_day_on_a_cluster(running_cluster: RedisCluster, key_prefix: str) -> None:
    nodes = [redis.Redis(port=node.port) for node in running_cluster.nodes]

    def script_calls() -> int:
        return sum(node.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0) for node in nodes)

    today = dt.datetime.now(dt.timezone.utc).date()
    tomorrow = today + dt.timedelta(days=1)
    ledger = SpendLedger(running_cluster.url, key_prefix=key_prefix)
    queue = LedgerQueue(ledger, inline=False, max_age=3600)
    ledger.record(today, "warm", "user", 0, 0)  # loads the script on every node
    before = script_calls()
    for day in (today, tomorrow):
        for n in range(200):
            queue.put(day, f"u{n}", "user", 100 + n)
    queue.flush()
    assert script_calls() - before == 2  # each day's rows share the day's hash tag: one call each
    for day in (today, tomorrow):
        assert ledger.report(day).micro_dollars == sum(100 + n for n in range(200))
    queue.close()
    ledger.close()
    for node in nodes:
        node.close()
