"""Redis: one round trip per governed call, bounded timeouts, fail closed, and recovery without a restart."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import redis
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from claude_rbac import RBAC, BackendUnavailable, Principal, RateLimited
from claude_rbac.testing import FakeClaude
from tests.support.redis import RedisServer
from tests.support.tcp_proxy import TcpProxy

KEY = "sk-ant-api03-redis-tests-000000000000000000000000000000-REDS"
PROMPT = "What is the tallest lighthouse?"
MESSAGES = [{"role": "user", "content": PROMPT}]
ALICE = Principal("alice", "user")
ROLE = {"models": ["claude-haiku-*"], "max_tokens": 10, "rpm": 1000, "tpm": 100_000, "budget": {"day": 10**6}}


def exact(body: Mapping[str, Any]) -> int:
    return math.ceil(len(PROMPT) / 4)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as private:
        yield private


def call(rbac: RBAC) -> None:
    rbac.client(ALICE).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)


class TestRoundTrips:
    def test_one_round_trip_per_call_for_rpm_tpm_and_budget(self, server: RedisServer, fake_claude: FakeClaude) -> None:
        # FakeClaude answers exactly max_tokens (10) and the estimate is exact, so nothing needs settling:
        # what the proxy sees is the admission alone.
        with TcpProxy("127.0.0.1", server.port) as proxy:
            rbac = RBAC(
                {"roles": {"user": ROLE}},
                storage=proxy.url(),
                api_key=KEY,
                base_url=fake_claude.url,
                token_estimator=exact,
            )
            call(rbac)  # connects and loads the scripts
            stats = redis.Redis.from_url(server.url)
            stats.config_resetstat()
            proxy.reset()
            for _ in range(20):
                call(rbac)
            assert rbac.flush()
            assert proxy.round_trips == 20
            evalsha = stats.info("commandstats")["cmdstat_evalsha"]["calls"]
            assert evalsha == 20  # three buckets, one script call
            rbac.close()
        assert fake_claude.count() == 21

    def test_one_round_trip_per_call_with_spend_limits_too(self, server: RedisServer, fake_claude: FakeClaude) -> None:
        # Dollars per principal and per role pool, beside rpm, tpm and the token budget: still one script call.
        spender = {**ROLE, "spend": {"day": 100, "month": 1000}, "pool": {"spend": {"month": 5000}}}
        with TcpProxy("127.0.0.1", server.port) as proxy:
            rbac = RBAC(
                {"roles": {"user": spender}},
                storage=proxy.url(),
                api_key=KEY,
                base_url=fake_claude.url,
                token_estimator=exact,
                spend_ledger=False,  # the ledger writes off the request path: tests/test_spend_ledger.py bounds it
            )
            call(rbac)
            stats = redis.Redis.from_url(server.url)
            stats.config_resetstat()
            proxy.reset()
            for _ in range(20):
                call(rbac)
            assert rbac.flush()
            assert proxy.round_trips == 20
            assert stats.info("commandstats")["cmdstat_evalsha"]["calls"] == 20
            (day, month, pool) = rbac.spend(ALICE)
            assert (day.scope, day.period, pool.scope) == ("principal", "day", "pool")
            assert day.used == month.used == pool.used > 0
            rbac.close()

    def test_async_one_round_trip(self, server: RedisServer, fake_claude: FakeClaude) -> None:
        with TcpProxy("127.0.0.1", server.port) as proxy:
            rbac = RBAC(
                {"roles": {"user": ROLE}},
                storage=proxy.url(),
                api_key=KEY,
                base_url=fake_claude.url,
                token_estimator=exact,
            )

            async def main() -> int:
                client = rbac.async_client(ALICE)
                await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
                proxy.reset()
                for _ in range(10):
                    await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
                trips = proxy.round_trips
                await rbac.aclose()
                return trips

            assert asyncio.run(main()) == 10

    def test_settlements_ride_the_next_round_trip_and_no_thread_starts(
        self, server: RedisServer, key_prefix: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The default estimate is high on purpose, so every call gives tokens back to its TPM and budget
        # buckets: each give-back waits in the queue and rides the next call's one script call.
        started: list[str] = []
        start = threading.Thread.start

        def counting_start(thread: threading.Thread) -> None:
            started.append(thread.name)
            start(thread)

        with FakeClaude() as fake, TcpProxy("127.0.0.1", server.port) as proxy:
            rbac = RBAC({"roles": {"user": ROLE}}, storage=proxy.url(), api_key=KEY, base_url=fake.url)
            call(rbac)  # connects, loads the script, starts the process's one settlement flusher
            monkeypatch.setattr(threading.Thread, "start", counting_start)
            threads = threading.active_count()
            proxy.reset()
            for _ in range(200):
                call(rbac)
            assert proxy.round_trips == 200
            assert started == []
            assert threading.active_count() == threads
            assert rbac.flush()
            assert proxy.round_trips == 201  # the last call's give-backs
            rbac.close()

    def test_async_settlements_ride_the_next_round_trip(
        self, server: RedisServer, key_prefix: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        started: list[str] = []
        start = threading.Thread.start

        def counting_start(thread: threading.Thread) -> None:
            started.append(thread.name)
            start(thread)

        with FakeClaude() as fake, TcpProxy("127.0.0.1", server.port) as proxy:
            rbac = RBAC({"roles": {"user": ROLE}}, storage=proxy.url(), api_key=KEY, base_url=fake.url)

            async def main() -> tuple[int, list[str]]:
                client = rbac.async_client(ALICE)
                await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
                proxy.reset()
                monkeypatch.setattr(threading.Thread, "start", counting_start)
                for _ in range(50):
                    await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
                trips, starts = proxy.round_trips, list(started)
                await rbac.aclose()
                return trips, starts

            assert asyncio.run(main()) == (50, [])
            rbac.close()

    def test_the_script_cache_flushed_by_a_restart_is_reloaded(
        self, server: RedisServer, fake_claude: FakeClaude
    ) -> None:
        rbac = RBAC({"roles": {"user": ROLE}}, storage=server.url, api_key=KEY, base_url=fake_claude.url)
        call(rbac)
        redis.Redis.from_url(server.url).script_flush()
        call(rbac)
        assert fake_claude.count() == 2
        rbac.close()


class TestOutage:
    def test_stopped_fails_closed_then_recovers(self, fake_claude: FakeClaude) -> None:
        server = RedisServer().start()
        try:
            rbac = RBAC(
                {"roles": {"user": {**ROLE, "rpm": 3}}}, storage=server.url, api_key=KEY, base_url=fake_claude.url
            )
            call(rbac)
            server.stop()
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                call(rbac)
            assert time.monotonic() - started < 1.5
            assert fake_claude.count() == 1
            server.start()  # the same port, empty: no restart of the app
            call(rbac)
            call(rbac)
            call(rbac)
            with pytest.raises(RateLimited):
                call(rbac)
            assert fake_claude.count() == 4
            rbac.close()
        finally:
            server.stop()

    def test_a_hanging_redis_times_out(self, server: RedisServer, fake_claude: FakeClaude) -> None:
        with TcpProxy("127.0.0.1", server.port) as proxy:
            rbac = RBAC({"roles": {"user": ROLE}}, storage=proxy.url(), api_key=KEY, base_url=fake_claude.url)
            call(rbac)
            proxy.hang()
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                call(rbac)
            elapsed = time.monotonic() - started
            assert elapsed < 1.0  # the default socket timeout is 0.25 s
            proxy.hang(False)
            call(rbac)
            assert fake_claude.count() == 2
            rbac.close()

    def test_the_timeout_is_configurable(self, server: RedisServer, fake_claude: FakeClaude) -> None:
        with TcpProxy("127.0.0.1", server.port) as proxy:
            rbac = RBAC(
                {"roles": {"user": ROLE}},
                storage=proxy.url(),
                api_key=KEY,
                base_url=fake_claude.url,
                storage_options={"socket_timeout": 0.05},
            )
            call(rbac)
            proxy.hang()
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                call(rbac)
            assert time.monotonic() - started < 0.5
            proxy.hang(False)
            rbac.close()

    def test_async_fails_closed_without_blocking_the_loop(self, server: RedisServer, fake_claude: FakeClaude) -> None:
        with TcpProxy("127.0.0.1", server.port) as proxy:
            rbac = RBAC({"roles": {"user": ROLE}}, storage=proxy.url(), api_key=KEY, base_url=fake_claude.url)

            async def main() -> tuple[int, float]:
                client = rbac.async_client(ALICE)
                await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
                proxy.hang()
                ticks = 0

                async def ticker() -> None:
                    nonlocal ticks
                    while True:
                        await asyncio.sleep(0.01)
                        ticks += 1

                task = asyncio.create_task(ticker())
                started = time.monotonic()
                with pytest.raises(BackendUnavailable):
                    await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
                elapsed = time.monotonic() - started
                task.cancel()
                proxy.hang(False)
                await rbac.aclose()
                return ticks, elapsed

            ticks, elapsed = asyncio.run(main())
            assert elapsed < 1.0
            assert ticks >= elapsed / 0.01 * 0.5  # the loop kept running while Redis hung
            assert fake_claude.count() == 1

    def test_allow_on_storage_error_is_an_explicit_opt_in(
        self, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="claude_rbac")
        server = RedisServer().start()
        rbac = RBAC(
            {"roles": {"user": ROLE}},
            storage=server.url,
            api_key=KEY,
            base_url=fake_claude.url,
            on_storage_error="allow",
        )
        server.stop()
        call(rbac)
        assert fake_claude.count() == 1
        assert any("allowing the call" in record.getMessage() for record in caplog.records)
        (sdk_span,) = [s for s in span_exporter.get_finished_spans() if s.name == "anthropic.messages.create"]
        assert dict(sdk_span.attributes or {})["claude_rbac.storage_error"] is True
        with pytest.raises(ValueError, match="on_storage_error"):
            RBAC({}, api_key=KEY, on_storage_error="maybe")  # type: ignore[arg-type]
        rbac.close()
