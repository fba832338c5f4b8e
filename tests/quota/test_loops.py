"""The async client on Redis under more than one event loop: ``asyncio.run`` per request, loops in threads.

An asyncio connection belongs to the loop that opened it, so each running loop gets its own client, closed
when that loop shuts down; the counts stay exact across loops because they live in Redis.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from claude_rbac import RBAC, BackendUnavailable, Principal, RateLimited
from claude_rbac.quota import Quota
from claude_rbac.testing import FakeClaude
from tests.support.redis import RedisServer

KEY = "sk-ant-api03-loops-tests-0000000000000000000000000000000-LOOP"
MESSAGES = [{"role": "user", "content": "hi"}]
ALICE = Principal("alice", "user")
RPM5 = {"roles": {"user": {"models": ["claude-haiku-*"], "max_tokens": 20, "rpm": 5, "tpm": 10_000}}}


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as private:
        yield private


@pytest.fixture
def unclosed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the garbage collector found still open (an unclosed socket or transport) during the test."""
    found: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda raised: found.append(repr(raised.object)))
    return found


def connections(url: str, within: float = 1.0) -> int:
    """The server's client connections but the watcher's own, once closed ones have left its list: the server
    drops a connection a moment after the client closed it, so a count of 0 is awaited for up to ``within``
    seconds (a leaked connection stays, and is counted)."""
    watcher = redis.Redis.from_url(url)
    deadline = time.monotonic() + within
    try:
        while True:
            count = len(watcher.client_list()) - 1
            if count == 0 or time.monotonic() >= deadline:
                return count
            time.sleep(0.01)
    finally:
        watcher.close()


def test_asyncio_run_twice_in_one_process(server: RedisServer, key_prefix: str, unclosed: list[str]) -> None:
    quota = Quota(server.url, key_prefix=key_prefix)
    buckets = quota.buckets(role="user", principal_id="alice", rpm=3, tpm=1000, tokens=100)

    async def request() -> int:
        reservation = await quota.aacquire(buckets)
        await quota.asettle(reservation, 40)
        return reservation.reserved

    assert asyncio.run(request()) == 100
    assert connections(server.url) == 0  # the first loop closed its client as it shut down
    assert asyncio.run(request()) == 100  # a new loop, a new client: no "Event loop is closed"
    assert asyncio.run(request()) == 100
    with pytest.raises(RateLimited):
        asyncio.run(request())  # the rpm of 3 counted across the three loops
    assert quota.flush()
    tpm = quota.buckets(role="user", principal_id="alice", rpm=None, tpm=1000, tokens=1)
    ((_, tokens_left, _),) = quota.remaining(tpm)
    assert tokens_left == 1000 - 3 * 40
    quota.close()
    gc.collect()
    assert connections(server.url) == 0
    assert unclosed == []


def test_an_rbac_async_client_across_loops(
    server: RedisServer, fake_claude: FakeClaude, key_prefix: str, unclosed: list[str]
) -> None:
    rbac = RBAC(RPM5, storage=server.url, key_prefix=key_prefix, api_key=KEY, base_url=fake_claude.url)

    async def request() -> str:
        client = rbac.async_client(ALICE)
        try:
            await client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=MESSAGES)
        except RateLimited:
            return "limited"
        except BackendUnavailable:
            return "unavailable"
        finally:
            await rbac.aclose()  # the app's HTTP pool; the quota's client closes with the loop anyway
        return "ok"

    assert [asyncio.run(request()) for _ in range(7)] == ["ok"] * 5 + ["limited"] * 2
    assert fake_claude.count() == 5
    rbac.close()
    gc.collect()
    assert unclosed == []


def test_loops_in_threads_share_exact_counts(server: RedisServer, key_prefix: str, unclosed: list[str]) -> None:
    # 4 threads, each with its own loop running 25 tasks, against rpm=5: exactly 5 in all.
    quota = Quota(server.url, key_prefix=key_prefix)
    buckets = quota.buckets(role="user", principal_id="alice", rpm=5)
    admitted: list[bool] = []
    start = threading.Barrier(4)

    async def one() -> bool:
        try:
            await quota.aacquire(buckets)
        except RateLimited:
            return False
        return True

    async def many() -> list[bool]:
        return list(await asyncio.gather(*(one() for _ in range(25))))

    def thread() -> None:
        start.wait()
        admitted.extend(asyncio.run(many()))

    threads = [threading.Thread(target=thread) for _ in range(4)]
    for each in threads:
        each.start()
    for each in threads:
        each.join(timeout=60)
    assert len(admitted) == 100
    assert admitted.count(True) == 5
    quota.close()
    gc.collect()
    assert connections(server.url) == 0
    assert unclosed == []


def test_a_loop_closed_by_hand_is_forgotten(server: RedisServer, key_prefix: str, unclosed: list[str]) -> None:
    # asyncio.run, asgiref and servers finalise a loop's async generators before closing it, which closes
    # its client. A loop closed by hand without that cannot close it: the next new loop forgets it, and only
    # the garbage collector closes its socket (with a ResourceWarning).
    quota = Quota(server.url, key_prefix=key_prefix)
    buckets = quota.buckets(role="user", principal_id="alice", rpm=10)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(quota.aacquire(buckets))
    loop.close()
    table: Any = quota._loops  # the per-loop clients this test is about
    assert len(table) == 1

    async def again() -> int:
        await quota.aacquire(buckets)
        return len(table)

    assert asyncio.run(again()) == 1  # the closed loop's entry is gone, the running loop's is there
    assert len(table) == 0  # and that one went when its loop shut down
    del loop
    gc.collect()
    assert connections(server.url) == 0
    assert any(str(server.port) in found for found in unclosed)
    quota.close()
