"""The admission script on parked connections: replaced when the server closed them, bounded, never shared
with a forked child, left clean by an error reply (redis-py's command path is bypassed there, so these are
the guarantees it gave that we must keep)."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading

import pytest
import redis

from claude_rbac import RateLimited
from claude_rbac.quota import Quota, StorageFailure
from claude_rbac.quota._script_calls import PARKED

pytestmark = pytest.mark.redis


def rpm_buckets(quota: Quota, user: str, rpm: int = 1000) -> tuple[object, ...]:
    return quota.buckets(role="user", principal_id=user, rpm=rpm, scope_name="")


def test_a_parked_connection_the_server_closed_is_replaced(redis_url: str, key_prefix: str) -> None:
    quota = Quota(redis_url, key_prefix=key_prefix)
    buckets = rpm_buckets(quota, "alice", rpm=2)
    quota.acquire(buckets)  # parks a connection
    admin = redis.Redis.from_url(redis_url)
    assert admin.client_kill_filter(_type="normal", skipme=True) >= 1  # a restart, an idle timeout...
    quota.acquire(buckets)  # the same window, counted once more
    with pytest.raises(RateLimited):
        quota.acquire(buckets)
    admin.close()
    quota.close()


def test_connections_kept_between_calls_are_bounded(redis_url: str, key_prefix: str) -> None:
    quota = Quota(redis_url, key_prefix=key_prefix)
    start = threading.Barrier(16)

    def call(n: int) -> None:
        start.wait()
        for _ in range(20):
            quota.acquire(rpm_buckets(quota, f"user-{n}"))

    threads = [threading.Thread(target=call, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pool = quota.storage.get_connection().connection_pool
    assert 1 <= len(pool._in_use_connections) <= PARKED  # parked; the others went back to the pool
    quota.close()
    assert not pool._in_use_connections  # close() gives the parked ones back


def _parked_ports(quota: Quota) -> set[int]:
    caller = quota._redis._caller
    assert caller is not None
    return {connection._sock.getsockname()[1] for connection in caller._parked if connection._sock is not None}


def _child_calls(quota: Quota, n: int, parents: set[int]) -> None:
    for _ in range(n):
        quota.acquire(rpm_buckets(quota, "shared"))
    ports = _parked_ports(quota)
    raise SystemExit(0 if ports and not ports & parents else 3)


def test_a_forked_child_never_writes_on_the_parents_parked_connection(redis_url: str, key_prefix: str) -> None:
    quota = Quota(redis_url, key_prefix=key_prefix)
    quota.acquire(rpm_buckets(quota, "shared", rpm=7))
    parents = _parked_ports(quota)
    assert parents
    child = multiprocessing.get_context("fork").Process(target=_child_calls, args=(quota, 5, parents))
    child.start()
    child.join(30)
    assert child.exitcode == 0  # the child called on connections of its own
    assert _parked_ports(quota) == parents
    quota.acquire(rpm_buckets(quota, "shared", rpm=7))
    with pytest.raises(RateLimited):  # 1 + 5 + 1 = 7 in the window: exactly full
        quota.acquire(rpm_buckets(quota, "shared", rpm=7))
    quota.close()


def test_an_error_reply_leaves_the_connection_usable(redis_url: str, key_prefix: str) -> None:
    quota = Quota(redis_url, key_prefix=key_prefix)
    broken = rpm_buckets(quota, "broken")
    quota.acquire(rpm_buckets(quota, "fine"))
    admin = redis.Redis.from_url(redis_url)
    for key in admin.scan_iter(f"*{key_prefix}*broken*"):
        admin.delete(key)
    quota.acquire(broken)
    (key,) = list(admin.scan_iter(f"*{key_prefix}*broken*"))
    admin.delete(key)
    admin.hset(key, "not", "a window")  # the script now fails on this key: WRONGTYPE
    with pytest.raises(StorageFailure, match="WRONGTYPE"):
        quota.acquire(broken)
    for _ in range(3):  # the parked connection carries no half-read reply into the next calls
        quota.acquire(rpm_buckets(quota, "fine"))
    admin.close()
    quota.close()


def test_async_a_parked_connection_the_server_closed_is_replaced(redis_url: str, key_prefix: str) -> None:
    quota = Quota(redis_url, key_prefix=key_prefix)
    buckets = rpm_buckets(quota, "alice", rpm=2)
    admin = redis.Redis.from_url(redis_url)

    async def main() -> None:
        await quota.aacquire(buckets)  # parks a connection of this loop's pool
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        await asyncio.sleep(0.05)  # the loop reads the close (as it would between two requests)
        await quota.aacquire(buckets)
        with pytest.raises(RateLimited):
            await quota.aacquire(buckets)
        await quota.aclose()

    asyncio.run(main())
    admin.close()
    quota.close()
