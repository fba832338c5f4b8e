"""RPM on real limits storages: exact under concurrency, escaped keys, retry_after, fail closed."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from claude_rbac import RBAC, BackendUnavailable, Policy, Principal, RateLimited
from claude_rbac.quota import Quota, async_storage_uri
from claude_rbac.testing import FakeClaude
from tests.support.redis import free_port

KEY = "sk-ant-api03-quota-tests-0000000000000000000000000000-wxyz"
MESSAGES = [{"role": "user", "content": "hi"}]
RPM5 = {"roles": {"user": {"models": ["claude-haiku-*"], "max_tokens": 50, "rpm": 5}}}


def rbac_for(storage: str, fake: FakeClaude, key_prefix: str, **kwargs: Any) -> RBAC:
    return RBAC(
        Policy.from_dict(RPM5), storage=storage, key_prefix=key_prefix, api_key=KEY, base_url=fake.url, **kwargs
    )


def test_100_threads_against_rpm_5(storage: str, fake_claude: FakeClaude, key_prefix: str) -> None:
    rbac = rbac_for(storage, fake_claude, key_prefix)
    client = rbac.client(Principal("alice", "user"))
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(100)

    def call() -> None:
        start.wait()
        try:
            client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
            result = "ok"
        except RateLimited:
            result = "limited"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=call) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes.count("ok") == 5
    assert outcomes.count("limited") == 95
    assert fake_claude.count() == 5
    rbac.close()


def test_100_tasks_against_rpm_5(storage: str, fake_claude: FakeClaude, key_prefix: str) -> None:
    rbac = rbac_for(storage, fake_claude, key_prefix)

    async def main() -> list[str]:
        client = rbac.async_client(Principal("alice", "user"))

        async def call() -> str:
            try:
                await client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
            except RateLimited:
                return "limited"
            return "ok"

        results = await asyncio.gather(*(call() for _ in range(100)))
        await rbac.aclose()
        return results

    outcomes = asyncio.run(main())
    assert outcomes.count("ok") == 5
    assert fake_claude.count() == 5


def test_a_burst_beyond_the_pool_waits_instead_of_failing(
    redis_url: str, fake_claude: FakeClaude, key_prefix: str
) -> None:
    # redis-py's asyncio pool refuses the 101st concurrent connection; ours queues the burst instead.
    rbac = rbac_for(redis_url, fake_claude, key_prefix)

    async def main() -> list[str]:
        client = rbac.async_client(Principal("alice", "user"))

        async def call() -> str:
            try:
                await client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
            except RateLimited:
                return "limited"
            except BackendUnavailable:
                return "unavailable"
            return "ok"

        results = await asyncio.gather(*(call() for _ in range(250)))
        await rbac.aclose()
        return results

    outcomes = asyncio.run(main())
    assert outcomes.count("unavailable") == 0
    assert outcomes.count("ok") == 5


def test_retry_after_comes_from_the_window(storage: str, fake_claude: FakeClaude, key_prefix: str) -> None:
    rbac = rbac_for(storage, fake_claude, key_prefix)
    client = rbac.client(Principal("alice", "user"))
    started = time.time()
    for _ in range(5):
        client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
    with pytest.raises(RateLimited) as info:
        client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
    # The oldest of the 5 calls leaves the 60 s moving window about 60 s after it was made.
    assert 55 <= info.value.retry_after <= 61
    assert time.time() - started < 5
    limits = rbac.rate_limits(Principal("alice", "user"))
    assert limits[0]["limit"] == 5
    assert limits[0]["remaining"] == 0
    rbac.close()


def test_ids_with_separators_never_share_a_bucket(storage: str, fake_claude: FakeClaude, key_prefix: str) -> None:
    policy = {"roles": {"user": {"models": ["claude-haiku-*"], "rpm": 1}}}
    rbac = RBAC(Policy.from_dict(policy), storage=storage, key_prefix=key_prefix, api_key=KEY, base_url=fake_claude.url)
    principals = [
        Principal("a/b", "user"),
        Principal("a", "user"),
        Principal("b", "user"),
        Principal("a:b", "user"),
        Principal("x", "user"),
        Principal("b/x", "user"),
        Principal("a%2Fb", "user"),
    ]
    for principal in principals:
        rbac.client(principal).messages.create(model="claude-haiku-4-5", max_tokens=1, messages=MESSAGES)
    assert fake_claude.count() == len(principals)
    rbac.close()


def test_a_storage_that_is_down_fails_closed(fake_claude: FakeClaude) -> None:
    dead = f"redis://127.0.0.1:{free_port()}"
    rbac = RBAC(Policy.from_dict(RPM5), storage=dead, api_key=KEY, base_url=fake_claude.url)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        rbac.client(Principal("alice", "user")).messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES
        )
    assert time.monotonic() - started < 2
    assert info.value.status_code == 503
    assert info.value.to_dict()["error"] == {
        "type": "api_error",
        "message": "Access control is temporarily unavailable.",
        "error_code": "backend_unavailable",
    }
    assert "127.0.0.1" not in str(info.value)
    assert fake_claude.requests == []


def test_a_storage_that_is_down_fails_closed_async(fake_claude: FakeClaude) -> None:
    dead = f"redis://127.0.0.1:{free_port()}"
    rbac = RBAC(Policy.from_dict(RPM5), storage=dead, api_key=KEY, base_url=fake_claude.url)

    async def main() -> None:
        with pytest.raises(BackendUnavailable):
            await rbac.async_client(Principal("alice", "user")).messages.create(
                model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES
            )
        await rbac.aclose()

    asyncio.run(main())
    assert fake_claude.requests == []


def test_async_storage_uris_are_derived() -> None:
    assert async_storage_uri("redis://h:1/0") == "async+redis://h:1/0"
    assert async_storage_uri("rediss://h:1") == "async+rediss://h:1"
    assert async_storage_uri("redis+cluster://h:1,h:2") == "async+redis+cluster://h:1,h:2"
    assert async_storage_uri("redis+sentinel://h:26379/mymaster") == "async+redis+sentinel://h:26379/mymaster"
    assert async_storage_uri("async+redis://h") == "async+redis://h"


@pytest.mark.parametrize(
    "uri", ["redis://127.0.0.1:6379/0", "rediss://127.0.0.1:6380", "redis+sentinel://127.0.0.1:26379/main"]
)
def test_redis_uris_are_accepted(uri: str) -> None:
    # These connect lazily, so the URI is accepted without a server (a cluster URI connects at once:
    # tests/test_redis_topologies.py runs a real cluster and a real sentinel).
    quota = Quota(uri)
    assert quota.uri == uri
    assert not quota.is_memory
