"""Every limits Redis URI, sync and async: a real three-node cluster and a real sentinel."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator

import pytest

from claude_rbac import RBAC, Principal, RateLimited
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
def cluster() -> Iterator[str]:
    with RedisCluster() as running:
        yield running.url


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
