"""Batches and count_tokens are metered, and a batch is its creator's (issue #14, item 7).

The attacks: a batch of many requests counted as one against RPM; ``count_tokens`` called without limit;
and reading (retrieve, results) or cancelling another user's batch by its id, which is no secret. A batch
counts each of its requests against the role's RPM; ``count_tokens`` counts against request buckets of its
own at the same rpm; retrieve/results/cancel go through only for the principal that created the batch (or
a role with ``batches = "all"``), on memory and on the real Redis, where the record is shared by workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pytest

from claude_rbac import RBAC, AccessDenied, BackendUnavailable, Policy, PolicyError, Principal, RateLimited
from claude_rbac.testing import FakeClaude
from tests.support.redis import RedisServer

KEY = "sk-ant-api03-batch-tests-000000000000000000000000000000000-BTCH"
HAIKU = "claude-haiku-4-5"
MESSAGES = [{"role": "user", "content": "hi"}]
UMA, URSULA = Principal("uma", "user"), Principal("ursula", "user")
AUDREY = Principal("audrey", "auditor")
POLICY = {
    "version": 1,
    "roles": {
        "user": {"models": ["claude-haiku-*"], "max_tokens": 512, "rpm": 10},
        "auditor": {"inherits": ["user"], "batches": "all"},
    },
}

Make = Callable[..., RBAC]


@pytest.fixture
def make(fake_claude: FakeClaude, storage: str, key_prefix: str) -> Iterator[Make]:
    built: list[RBAC] = []

    def build(**options: Any) -> RBAC:
        options = {"storage": storage, "key_prefix": key_prefix, "api_key": KEY, "base_url": fake_claude.url, **options}
        rbac = RBAC(POLICY, **options)
        built.append(rbac)
        return rbac

    yield build
    for rbac in built:
        rbac.close()


def batch_of(count: int) -> list[Any]:
    params = {"model": HAIKU, "max_tokens": 10, "messages": MESSAGES}
    return [{"custom_id": f"r{index}", "params": params} for index in range(count)]


def create(client: anthropic.Anthropic, count: int = 1) -> str:
    return client.messages.batches.create(requests=batch_of(count)).id


class TestRequestsPerMinute:
    def test_a_batch_counts_each_of_its_requests(self, make: Make, fake_claude: FakeClaude) -> None:
        claude = make().client(UMA)
        create(claude, 4)
        for _ in range(6):
            claude.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)
        with pytest.raises(RateLimited):  # 4 + 6 = the user's 10 a minute
            claude.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)
        assert fake_claude.count() == 6

    def test_a_batch_above_the_rpm_is_refused(self, make: Make, fake_claude: FakeClaude) -> None:
        with pytest.raises(RateLimited):
            create(make().client(UMA), 11)
        assert fake_claude.count("/v1/messages/batches") == 0

    def test_count_tokens_is_metered_in_its_own_buckets(self, make: Make, fake_claude: FakeClaude) -> None:
        claude = make().client(UMA)
        for _ in range(10):
            claude.messages.count_tokens(model=HAIKU, messages=MESSAGES)
        with pytest.raises(RateLimited):
            claude.messages.count_tokens(model=HAIKU, messages=MESSAGES)
        claude.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)  # messages have their own 10
        assert fake_claude.count("/v1/messages/count_tokens") == 10


class TestOwnership:
    def test_only_the_creator_reads_or_cancels_a_batch(self, make: Make, fake_claude: FakeClaude) -> None:
        rbac = make()
        batch_id = create(rbac.client(UMA))
        other = rbac.client(URSULA)
        for attempt in (
            lambda: other.messages.batches.retrieve(batch_id),
            lambda: list(other.messages.batches.results(batch_id)),
            lambda: other.messages.batches.cancel(batch_id),
            lambda: other.beta.messages.batches.retrieve(batch_id),
        ):
            with pytest.raises(AccessDenied) as info:
                attempt()
            assert info.value.reason == "batch_not_owned"
            assert info.value.status_code == 403
        assert [request.path for request in fake_claude.requests] == ["/v1/messages/batches"]
        owner = rbac.client(UMA)
        assert owner.messages.batches.retrieve(batch_id).id == batch_id
        assert [result.custom_id for result in owner.messages.batches.results(batch_id)] == ["r0"]
        owner.messages.batches.cancel(batch_id)

    def test_a_role_granted_all_batches_reads_any(self, make: Make) -> None:
        rbac = make()
        batch_id = create(rbac.client(UMA))
        assert rbac.client(AUDREY).messages.batches.retrieve(batch_id).id == batch_id

    def test_an_unknown_batch_is_nobodys(self, make: Make, fake_claude: FakeClaude) -> None:
        with pytest.raises(AccessDenied):
            make().client(UMA).messages.batches.retrieve("msgbatch_made_up")
        assert fake_claude.requests == []

    def test_async_clients(self, make: Make, fake_claude: FakeClaude) -> None:
        rbac = make()

        async def main() -> None:
            batch_id = (await rbac.async_client(UMA).messages.batches.create(requests=batch_of(1))).id  # type: ignore[arg-type]
            with pytest.raises(AccessDenied):
                await rbac.async_client(URSULA).messages.batches.retrieve(batch_id)
            assert (await rbac.async_client(UMA).messages.batches.retrieve(batch_id)).id == batch_id
            await rbac.aclose()

        asyncio.run(main())
        assert fake_claude.count("/v1/messages/batches") == 1


@pytest.mark.redis
def test_ownership_holds_across_workers_on_redis(fake_claude: FakeClaude, redis_url: str, key_prefix: str) -> None:
    """Two RBACs on one Redis, like two gunicorn workers: a batch made on one is its creator's on the other."""
    workers = [
        RBAC(POLICY, storage=redis_url, key_prefix=key_prefix, api_key=KEY, base_url=fake_claude.url) for _ in range(2)
    ]
    batch_id = create(workers[0].client(UMA))
    assert workers[1].client(UMA).messages.batches.retrieve(batch_id).id == batch_id
    with pytest.raises(AccessDenied):
        workers[1].client(URSULA).messages.batches.retrieve(batch_id)
    for worker in workers:
        worker.close()


@pytest.mark.redis
def test_a_storage_that_cannot_answer_fails_closed(fake_claude: FakeClaude) -> None:
    with RedisServer() as server:
        rbac = RBAC(POLICY, storage=server.url, api_key=KEY, base_url=fake_claude.url)
        batch_id = create(rbac.client(UMA))
        server.stop()
        with pytest.raises(BackendUnavailable):
            rbac.client(UMA).messages.batches.retrieve(batch_id)
        rbac.close()
    assert fake_claude.count("/v1/messages/batches") == 1
    assert fake_claude.count(f"/v1/messages/batches/{batch_id}", "GET") == 0


def test_the_batches_grant_is_validated_at_load() -> None:
    with pytest.raises(PolicyError, match=r"roles\.user\.batches: must be one of own, all"):
        Policy.from_dict({"roles": {"user": {"models": ["claude-haiku-*"], "batches": "everyone"}}})
    assert Policy.from_dict(POLICY).roles["auditor"].batches == "all"
    assert Policy.from_dict(POLICY).roles["user"].batches == "own"
