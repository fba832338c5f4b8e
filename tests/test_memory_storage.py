"""LazyMemoryStorage on limits' real strategies, with limits' own MemoryStorage as the oracle.

The oracle runs on the same fake clock with its timer thread stubbed out, so it expires only lazily
(on access) and gives deterministic answers: the ones limits gives, minus the timer's races.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import pickle
import signal
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from unittest import mock

import limits.storage.memory
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter, SlidingWindowCounterRateLimiter

from claude_rbac import RBAC, Principal, RateLimited
from claude_rbac.quota import LazyMemoryStorage
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-memory-tests-000000000000000000000000000-MEMO"
MESSAGES = [{"role": "user", "content": "hi"}]
START = 1_700_000_000.0


@dataclass
class FakeClock:
    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def limits_on(clock: FakeClock) -> Iterator[None]:
    """limits' MemoryStorage reads ``clock`` for the time, and its timer never runs (it expires on access only)."""
    no_timer = SimpleNamespace(start=lambda: None, is_alive=lambda: False)
    fake_threading = SimpleNamespace(Timer=lambda *args: no_timer, RLock=threading.RLock)
    with (
        mock.patch.object(limits.storage.memory, "time", SimpleNamespace(time=clock)),
        mock.patch.object(limits.storage.memory, "threading", fake_threading),
    ):
        yield


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def oracle(clock: FakeClock) -> Iterator[MemoryStorage]:
    with limits_on(clock):
        yield MemoryStorage()


# -- the three strategies, at controlled times ------------------------------------------------------------


def test_the_moving_window_is_exact(clock: FakeClock, oracle: MemoryStorage) -> None:
    storage = LazyMemoryStorage(clock=clock, sweep_interval=0)
    ours, theirs, five = MovingWindowRateLimiter(storage), MovingWindowRateLimiter(oracle), RateLimitItemPerMinute(5)

    def hit(cost: int = 1) -> bool:
        answer = ours.hit(five, "alice", cost=cost)
        assert answer == theirs.hit(five, "alice", cost=cost)
        return answer

    assert hit()
    clock.advance(1)
    assert hit(cost=4) and not hit()
    assert ours.get_window_stats(five, "alice") == (START + 60, 0)
    clock.now = START + 60  # the first entry is exactly 60 s old: still in the window (limits' rule)
    assert not hit()
    clock.now = START + 61  # the first has left (trimmed and swept past); the four of START + 1 still count
    assert not hit(cost=2)
    assert hit() and not hit()
    assert ours.hit(five, "bob")


def test_costs_above_one(clock: FakeClock) -> None:
    storage = LazyMemoryStorage(clock=clock)
    moving, sliding, fixed = (cls(storage) for cls in STRATEGIES)
    five = RateLimitItemPerMinute(5)
    for limiter in (moving, sliding):
        assert limiter.hit(five, "alice", cost=3)
        assert not limiter.hit(five, "alice", cost=3)
        assert limiter.test(five, "alice", cost=2)
        assert not limiter.hit(five, "alice", cost=6)
        assert limiter.hit(five, "alice", cost=2)
        assert limiter.get_window_stats(five, "alice").remaining == 0
    assert fixed.hit(five, "alice", cost=3)
    assert not fixed.hit(five, "alice", cost=3)  # a fixed window counts a refused hit too (limits' rule) ...
    assert fixed.hit(five, "alice", cost=-4)  # ... and a negative cost gives back
    assert storage.get(five.key_for("alice")) == 2


def test_a_fixed_window_expires(clock: FakeClock) -> None:
    storage = LazyMemoryStorage(clock=clock)
    limiter = FixedWindowRateLimiter(storage)
    two = RateLimitItemPerSecond(2, 10)
    assert limiter.hit(two, "alice")
    clock.advance(4)
    assert limiter.hit(two, "alice") and not limiter.hit(two, "alice")
    assert limiter.get_window_stats(two, "alice") == (START + 10, 0)
    clock.now = START + 10
    assert limiter.get_window_stats(two, "alice") == (START + 10, 2)
    assert limiter.hit(two, "alice")
    assert storage.get_expiry(two.key_for("alice")) == START + 20


def test_the_sliding_counter_answers_as_limits_does(clock: FakeClock, oracle: MemoryStorage) -> None:
    storage, hundred = LazyMemoryStorage(clock=clock), RateLimitItemPerMinute(100)
    ours, theirs = SlidingWindowCounterRateLimiter(storage), SlidingWindowCounterRateLimiter(oracle)
    for step, cost in enumerate([30, 50, 40, 25, 60, 10, 90, 5, 5, 5, -20, 35] * 3):
        clock.advance(7.5 + step % 4)
        assert ours.hit(hundred, "alice", cost=cost) == theirs.hit(hundred, "alice", cost=cost), step
        key = hundred.key_for("alice")
        assert storage.get_sliding_window(key, 60) == oracle.get_sliding_window(key, 60)


def test_clear_and_reset(clock: FakeClock) -> None:
    storage = LazyMemoryStorage(clock=clock)
    limiters = [cls(storage) for cls in STRATEGIES]
    one = RateLimitItemPerMinute(1)
    for limiter in limiters:
        assert limiter.hit(one, "alice") and limiter.hit(one, "bob") and not limiter.hit(one, "alice")
        limiter.clear(one, "alice")
        assert limiter.hit(one, "alice") and not limiter.hit(one, "bob")
    assert storage.reset() == 4  # counters: two fixed, two sliding (the moving windows are the other table)
    assert len(storage) == 0
    assert all(limiter.hit(one, "bob") for limiter in limiters)


def test_real_time_against_limits_memory_storage() -> None:
    ours, theirs = LazyMemoryStorage(), MemoryStorage()
    two = RateLimitItemPerSecond(2)
    for cls in (MovingWindowRateLimiter, FixedWindowRateLimiter):
        answers = [(cls(ours).hit(two, "alice"), cls(theirs).hit(two, "alice")) for _ in range(3)]
        assert answers == [(True, True), (True, True), (False, False)]
    time.sleep(1.1)
    answers = [(cls(ours).hit(two, "alice"), cls(theirs).hit(two, "alice")) for cls in STRATEGIES[::2]]
    assert answers == [(True, True), (True, True)]


def test_a_pickled_copy_keeps_the_counts(clock: FakeClock) -> None:
    limiter, one = MovingWindowRateLimiter(LazyMemoryStorage(clock=clock)), RateLimitItemPerMinute(1)
    assert limiter.hit(one, "alice")
    copy = MovingWindowRateLimiter(pickle.loads(pickle.dumps(limiter.storage)))
    assert not copy.hit(one, "alice") and copy.hit(one, "bob")


def test_memory_uri_still_means_limits_storage_for_everyone_else() -> None:
    rbac = RBAC(RPM5, storage="memory://", api_key=KEY)
    assert isinstance(rbac.quota.storage, LazyMemoryStorage)
    rbac.close()
    assert type(storage_from_string("memory://")) is MemoryStorage


# -- against limits, on random sequences --------------------------------------------------------------------

STRATEGIES = (MovingWindowRateLimiter, SlidingWindowCounterRateLimiter, FixedWindowRateLimiter)
ITEMS: list[RateLimitItem] = [RateLimitItemPerSecond(3), RateLimitItemPerSecond(4, 2), RateLimitItemPerMinute(5)]
WAITS = st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.25, 2.0, 60.0, 61.0])


class AgainstLimits(RuleBasedStateMachine):
    """Every answer of our storage equals the oracle's, for any sequence of hits, waits, clears and sweeps."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.patches = ExitStack()
        self.patches.enter_context(limits_on(self.clock))
        # Sweep on every call, one queue entry at a time: expiry runs as often as it can.
        self.ours = LazyMemoryStorage(clock=self.clock, sweep_interval=0, sweep_batch=1)
        self.theirs = MemoryStorage()
        self.pairs = [(cls(self.ours), cls(self.theirs)) for cls in STRATEGIES]

    def teardown(self) -> None:
        self.patches.close()

    @rule(seconds=WAITS)
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(item=st.sampled_from(ITEMS), who=st.sampled_from("ab"), cost=st.integers(-2, 5))
    def hit(self, item: RateLimitItem, who: str, cost: int) -> None:
        for ours, theirs in self.pairs:
            assert ours.test(item, who, cost=cost) == theirs.test(item, who, cost=cost)
            assert ours.hit(item, who, cost=cost) == theirs.hit(item, who, cost=cost)

    @rule(item=st.sampled_from(ITEMS), who=st.sampled_from("ab"), amount=st.integers(0, 3))
    def decr(self, item: RateLimitItem, who: str, amount: int) -> None:
        key = item.key_for(who)
        assert self.ours.decr(key, amount) == self.theirs.decr(key, amount)

    @rule(kind=st.integers(0, 2), item=st.sampled_from(ITEMS), who=st.sampled_from("ab"))
    def clear(self, kind: int, item: RateLimitItem, who: str) -> None:
        for limiter in self.pairs[kind]:
            limiter.clear(item, who)

    @rule()
    def sweep(self) -> None:
        self.ours.sweep()

    @invariant()
    def same_windows(self) -> None:
        for item, who in itertools.product(ITEMS, "ab"):
            key, expiry = item.key_for(who), item.get_expiry()
            start, count = self.ours.get_moving_window(key, item.amount, expiry)
            their_start, their_count = self.theirs.get_moving_window(key, item.amount, expiry)
            assert count == their_count
            if count:  # limits' empty window reports a stale start until its timer trims it; ours says now
                assert start == their_start
            assert self.ours.get_sliding_window(key, expiry) == self.theirs.get_sliding_window(key, expiry)
            fixed_ours, fixed_theirs = self.pairs[2]
            assert fixed_ours.get_window_stats(item, who) == fixed_theirs.get_window_stats(item, who)


TestAgainstLimits = AgainstLimits.TestCase
TestAgainstLimits.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(0, 40).map(lambda tenths: tenths / 10), st.integers(1, 3)), max_size=80),
    limit=st.integers(1, 6),
)
def test_never_more_than_the_limit_in_any_window(steps: list[tuple[float, int]], limit: int) -> None:
    clock = FakeClock()
    limiter = MovingWindowRateLimiter(LazyMemoryStorage(clock=clock, sweep_interval=0, sweep_batch=1))
    item = RateLimitItemPerSecond(limit, 2)
    admitted: list[tuple[float, int]] = []
    for wait, cost in steps:
        clock.advance(wait)
        if limiter.hit(item, "alice", cost=cost):
            admitted.append((clock.now, cost))
    for end, _ in admitted:  # every window [end - 2 s, end] ending at an admitted hit
        assert sum(cost for at, cost in admitted if end - 2 <= at <= end) <= limit


# -- concurrency --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_100_threads_against_5_a_minute(strategy: type[MovingWindowRateLimiter]) -> None:
    limiter, five, admitted = strategy(LazyMemoryStorage()), RateLimitItemPerMinute(5), []
    start = threading.Barrier(100)

    def hit() -> None:
        start.wait()
        admitted.append(limiter.hit(five, "alice"))

    threads = [threading.Thread(target=hit) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert admitted.count(True) == 5 and len(admitted) == 100


RPM5 = {"roles": {"user": {"models": ["claude-haiku-*"], "max_tokens": 50, "rpm": 5}}}


def test_100_tasks_through_the_async_client(fake_claude: FakeClaude) -> None:
    # The async client of a memory:// RBAC uses this same sync storage from the event loop. (100 threads through
    # the sync client: tests/test_quota.py, whose memory:// case now runs on this storage.)
    rbac = RBAC(RPM5, storage="memory://", api_key=KEY, base_url=fake_claude.url)
    assert isinstance(rbac.quota.storage, LazyMemoryStorage)

    async def main() -> list[str]:
        client = rbac.async_client(Principal("alice", "user"))

        async def call() -> str:
            try:
                await client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
            except RateLimited:
                return "limited"
            return "ok"

        outcomes = await asyncio.gather(*(call() for _ in range(100)))
        await rbac.aclose()
        return outcomes

    outcomes = asyncio.run(main())
    assert (outcomes.count("ok"), outcomes.count("limited")) == (5, 95)
    assert fake_claude.count() == 5


def test_no_thread_is_ever_started() -> None:
    storage = LazyMemoryStorage()
    limiters, item = [cls(storage) for cls in STRATEGIES], RateLimitItemPerSecond(10**6)
    before = set(threading.enumerate())
    for i in range(1000):
        assert limiters[i % 3].hit(item, f"user-{i % 50}", cost=1 + i % 3)
    assert set(threading.enumerate()) <= before  # (a thread limits started in an earlier test may have ended)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_mid_hit_gets_a_usable_storage() -> None:
    storage = LazyMemoryStorage()
    limiter, item = MovingWindowRateLimiter(storage), RateLimitItemPerMinute(10**9)
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            limiter.hit(item, "hammer")

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for _ in range(25):
            time.sleep(0.002)
            pid = os.fork()
            if pid == 0:  # the child: a lock inherited held would hang here until SIGALRM kills it
                signal.alarm(5)
                os._exit(0 if limiter.hit(item, "child") and storage.get_moving_window("x", 1, 60)[1] == 0 else 1)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
    finally:
        stop.set()
        thread.join()


# -- idle principals are freed, in bounded steps ---------------------------------------------------------------


def _three_buckets(storage: LazyMemoryStorage, who: str, tokens: int = 20) -> None:
    minute = RateLimitItemPerMinute(10**6)
    assert MovingWindowRateLimiter(storage).hit(minute, "rpm", who)
    assert SlidingWindowCounterRateLimiter(storage).hit(minute, "tpm", who, cost=tokens)
    assert FixedWindowRateLimiter(storage).hit(minute, "budget", who, cost=tokens)


def test_10000_idle_principals_are_freed_by_the_calls_of_others(clock: FakeClock) -> None:
    storage = LazyMemoryStorage(clock=clock, sweep_batch=64)
    for i in range(10_000):
        _three_buckets(storage, f"user-{i}")
        if i % 100 == 99:
            clock.advance(0.05)
    assert len(storage) == 30_000
    clock.advance(121)  # past the sliding counters' two windows, the longest anything lives here
    held = len(storage)
    for calls in itertools.count(1):
        assert calls < 1000
        _three_buckets(storage, "still-active")
        # each storage call frees at most one batch: three storage calls per governed call
        assert held - len(storage) <= 3 * 64
        held = len(storage)
        if held == 3:  # only what the active principal holds
            break
        clock.advance(0.001)
    assert calls >= 30_000 // (3 * 64)
    clock.advance(121)
    assert storage.sweep() == 3  # the last active principal's keys, now idle too
    assert len(storage) == 0


def test_an_explicit_sweep_frees_everything_expired(clock: FakeClock) -> None:
    storage = LazyMemoryStorage(clock=clock)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for i in range(10_000):
            _three_buckets(storage, f"user-{i}")
        busy = tracemalloc.get_traced_memory()[0] - baseline
        clock.advance(60.5)
        assert storage.sweep() == 20_000  # the moving and the fixed windows; sliding counters live 2 minutes
        clock.advance(60)
        assert storage.sweep() == 10_000
        assert len(storage) == 0
        gc.collect()
        assert tracemalloc.get_traced_memory()[0] - baseline < busy / 20  # the tables shrank too
    finally:
        tracemalloc.stop()
    _three_buckets(storage, "user-0")  # a key freed and made again counts from zero
    stats = MovingWindowRateLimiter(storage).get_window_stats(RateLimitItemPerMinute(10**6), "rpm", "user-0")
    assert stats == (clock.now + 60, 10**6 - 1)
