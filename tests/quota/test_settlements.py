"""Settlements on Redis: a give-back rides the next call, waits at most ``settle_within`` seconds without one,
and is sent by ``close()`` and at exit; usage beyond a reservation is sent at once. So a crash or a failed
send loses give-backs only: the reservation stands, usage is over-counted, never under-counted.

The counters are read straight from Redis (a ``remaining()`` read would carry the queue and hide it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from claude_rbac.quota import Bucket, Quota, StorageFailure
from tests.support.redis import RedisServer
from tests.support.tcp_proxy import TcpProxy

NOW = float(int(time.time() // 60) * 60 + 10)  # ten seconds into a minute: nothing rolls over mid-test


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as private:
        yield private


def tpm(quota: Quota, who: str = "alice", cost: int = 500) -> tuple[Bucket, ...]:
    return quota.buckets(role="user", principal_id=who, rpm=None, tpm=10**6, tokens=cost)


def held(url: str, quota: Quota, buckets: tuple[Bucket, ...]) -> int:
    """What the call's TPM window holds in Redis right now."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.get(quota.storage.prefixed_key(buckets[0].window(NOW)[0])) or 0)
    finally:
        client.close()


def test_a_give_back_rides_the_next_call(server: RedisServer) -> None:
    quota = Quota(server.url, clock=Clock(), settle_within=3600)
    alice, bob = tpm(quota), tpm(quota, "bob", 300)
    quota.settle(quota.acquire(alice), 100)
    assert held(server.url, quota, alice) == 500  # queued, not sent
    quota.acquire(bob)  # another principal's call carries it
    assert held(server.url, quota, alice) == 100
    assert held(server.url, quota, bob) == 300
    quota.close()


def test_without_a_next_call_it_waits_at_most_settle_within(server: RedisServer) -> None:
    quota = Quota(server.url, clock=Clock(), settle_within=0.3)
    alice = tpm(quota)
    quota.settle(quota.acquire(alice), 100)
    queued = time.monotonic()
    while held(server.url, quota, alice) != 100:
        assert time.monotonic() - queued < 0.3 + 2.0  # the bound, and room for a loaded machine
        time.sleep(0.01)
    assert time.monotonic() - queued >= 0.25  # it waited for a call to carry it first
    quota.close()


def test_close_and_flush_send_what_waits(server: RedisServer) -> None:
    quota = Quota(server.url, clock=Clock(), settle_within=3600)
    alice, bob = tpm(quota), tpm(quota, "bob")
    quota.settle(quota.acquire(alice), 100)
    assert quota.flush()
    assert held(server.url, quota, alice) == 100
    quota.settle(quota.acquire(bob), 200)
    quota.close()
    assert held(server.url, quota, bob) == 200


def run_script(url: str, body: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(f"""
        import os, signal
        from claude_rbac.quota import Quota
        quota = Quota({url!r}, clock=lambda: {NOW!r}, settle_within=3600)
        def tpm(who, cost):
            return quota.buckets(role="user", principal_id=who, rpm=None, tpm=10**6, tokens=cost)
        """) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)


def test_interpreter_exit_sends_what_waits(server: RedisServer) -> None:
    done = run_script(server.url, 'quota.settle(quota.acquire(tpm("alice", 500)), 100)\n')
    assert done.returncode == 0, done.stderr
    quota = Quota(server.url, clock=Clock())
    assert held(server.url, quota, tpm(quota)) == 100
    quota.close()


def test_a_crash_loses_give_backs_only(server: RedisServer) -> None:
    done = run_script(
        server.url,
        """
        alice, bob = quota.acquire(tpm("alice", 500)), quota.acquire(tpm("bob", 300))
        quota.settle(bob, 900)  # 600 beyond the reservation: sent at once
        quota.settle(alice, 100)  # 400 to give back: queued for the next round trip
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    assert done.returncode == -signal.SIGKILL
    quota = Quota(server.url, clock=Clock())
    assert held(server.url, quota, tpm(quota)) == 500  # the reservation stands: over-counted by 400
    assert held(server.url, quota, tpm(quota, "bob")) == 900  # all that was used
    quota.close()


def test_a_failed_send_drops_give_backs_and_keeps_the_excess(server: RedisServer) -> None:
    with TcpProxy("127.0.0.1", server.port) as proxy:
        quota = Quota(proxy.url(), clock=Clock(), settle_within=3600)
        alice, bob = tpm(quota), tpm(quota, "bob", 300)
        reservations = quota.acquire(alice), quota.acquire(bob)
        quota.settle(reservations[0], 100)
        proxy.hang()
        with pytest.raises(StorageFailure, match="Timeout"):
            quota.settle(reservations[1], 900)  # the excess could not be sent: it waits in the queue
        assert not quota.flush(1.0)  # the outcome unknown: the give-back is not sent again, the excess is
        proxy.hang(False)  # (the partition heals, and what was sent into it may land after all)
        assert quota.flush()
        assert held(server.url, quota, alice) in (100, 500)  # given back once or not at all: never twice
        assert held(server.url, quota, bob) >= 900  # recorded at least once: never under-counted
        quota.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_worker_does_not_send_what_its_parent_queued(server: RedisServer) -> None:
    quota = Quota(server.url, clock=Clock(), settle_within=3600)
    alice = tpm(quota)
    quota.settle(quota.acquire(alice), 100)  # 400 to give back, queued in the parent
    pid = os.fork()
    if pid == 0:  # the child starts with an empty queue and no flusher of its own
        signal.alarm(10)
        os._exit(0 if quota.flush() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert held(server.url, quota, alice) == 500
    assert quota.flush()
    assert held(server.url, quota, alice) == 100  # sent once (twice would leave 0)
    quota.close()


def test_a_take_that_lost_the_race_is_not_counted_in_flight() -> None:
    # Two admissions see a non-empty queue at once; the first takes everything. The second's take is empty
    # and must not count as a send in flight, or flush() would wait for it until its timeout (found with
    # 4 processes x 25 threads on one spend limit).
    import threading

    from claude_rbac.quota._engine import Settlement
    from claude_rbac.quota._settlements import SettlementQueue

    queue = SettlementQueue(lambda items: None, max_age=60)
    queue.put([Settlement("{g}", "{g}/k", -1)])
    got: list[list[Settlement]] = []
    with queue._lock:  # the second admission passed the unlocked check and waits for the lock
        late = threading.Thread(target=lambda: got.append(queue.take()))
        late.start()
        time.sleep(0.05)
        items, queue._items = queue._items, []  # meanwhile the first admission took everything
        queue._in_flight += 1
    late.join(5)
    assert got == [[]]
    queue.done(items)
    started = time.monotonic()
    assert queue.flush(5)
    assert time.monotonic() - started < 1
    queue.close(1)


def test_flush_waits_for_a_send_another_call_carries() -> None:
    # An admission took the queue to its round trip; flush() returns once that trip lands (the landing wakes
    # it: done() notifies only while someone flushes), or False when it does not land in time.
    import threading

    from claude_rbac.quota._engine import Settlement
    from claude_rbac.quota._settlements import SettlementQueue

    queue = SettlementQueue(lambda items: None, max_age=60)
    queue.put([Settlement("{g}", "{g}/k", -1)])
    carried = queue.take()
    assert not queue.flush(0.1)  # the trip is still in flight
    flushed: list[bool] = []
    waiting = threading.Thread(target=lambda: flushed.append(queue.flush(10)))
    waiting.start()
    time.sleep(0.1)
    assert waiting.is_alive()
    started = time.monotonic()
    queue.done(carried)
    waiting.join(5)
    assert flushed == [True]
    assert time.monotonic() - started < 1  # woken by the landing, not by its timeout
    queue.close(1)
