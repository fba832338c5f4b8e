"""A batch's dollars are settled once, from its results, when they are read (issue #16, "for batches from
each result").

FakeClaude answers every item with a scripted usage (``service_tier: "batch"``); the real SDK reads the
results (a JSON Lines download from the batch's ``results_url``); the figures are computed by hand from the
shipped price table: haiku 4.5 $1 in / $5 out / $1.25 5m write / $2 1h write / $0.10 read per MTok, batch x0.5.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import anthropic
import pytest

from claude_rbac import RBAC, Principal
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-batch-spend-00000000000000000000000000000000-BSPD"
HAIKU = "claude-haiku-4-5"
UMA = Principal("uma", "user")
ADA = Principal("ada", "admin")
POLICY = {
    "version": 1,
    "roles": {
        "user": {"models": ["claude-haiku-*"], "max_tokens": 1000, "rpm": 100, "spend": {"day": 5, "month": 50}},
        "admin": {"inherits": ["user"], "batches": "all"},
    },
}
M = Decimal(1_000_000)
HALF = Decimal("0.5")

# custom_id -> (scripted usage, its hand-computed cost at batch rates)
ITEMS: dict[str, tuple[dict[str, Any], Decimal]] = {
    "r0": ({"input_tokens": 1000, "output_tokens": 200}, (1000 * Decimal(1) + 200 * Decimal(5)) * HALF / M),
    "r1": (
        {
            "input_tokens": 300,
            "output_tokens": 78,
            "cache_creation": {"ephemeral_5m_input_tokens": 40, "ephemeral_1h_input_tokens": 0},
            "cache_read_input_tokens": 500,
        },
        (300 + 78 * Decimal(5) + 40 * Decimal("1.25") + 500 * Decimal("0.10")) * HALF / M,
    ),
    "r2": (
        {
            "input_tokens": 10,
            "output_tokens": 2,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 100},
        },
        (10 + 2 * Decimal(5) + 100 * Decimal(2)) * HALF / M,
    ),
}
EXACT = sum((cost for _, cost in ITEMS.values()), Decimal(0))  # the errored item "r3" costs nothing

Make = Callable[..., RBAC]


class Ledger:
    """A spend recorder that keeps every row it is handed."""

    def __init__(self) -> None:
        self.rows: list[tuple[dt.date, str, str, int, int]] = []

    def record(self, day: dt.date, principal: str, role: str, micro_dollars: int, calls: int) -> None:
        self.rows.append((day, principal, role, micro_dollars, calls))


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


def script(fake: FakeClaude) -> list[dict[str, Any]]:
    """The batch's requests: three scripted successes and one errored item."""
    for custom_id, (usage, _) in ITEMS.items():
        fake.script_usage(usage, custom_id=custom_id)
    fake.script_batch_outcome("r3", "errored")
    params = {"model": HAIKU, "max_tokens": 1000, "messages": [{"role": "user", "content": "hi " * 50}]}
    return [{"custom_id": custom_id, "params": params} for custom_id in (*ITEMS, "r3")]


def used(rbac: RBAC, principal: Principal) -> dict[str, Decimal]:
    rbac.flush()
    return {window.period: window.used for window in rbac.spend(principal) if window.scope == "principal"}


def read(client: anthropic.Anthropic, batch_id: str) -> list[str]:
    return sorted(line.result.type for line in client.messages.batches.results(batch_id))


class TestSettledFromResults:
    def test_the_hand_computed_sum(self) -> None:
        assert Decimal("0.001505") == EXACT  # 1000 + 395 + 110 micro-dollars: whole, so no rounding hides

    def test_the_results_settle_the_batch_to_its_exact_cost(self, make: Make, fake_claude: FakeClaude) -> None:
        ledger = Ledger()
        rbac = make(spend_recorder=ledger)
        claude = rbac.client(UMA)
        batch_id = claude.messages.batches.create(requests=script(fake_claude)).id
        reserved = used(rbac, UMA)
        assert reserved["day"] > EXACT  # the worst case of four items at batch rates

        assert read(claude, batch_id) == ["errored", "succeeded", "succeeded", "succeeded"]

        assert used(rbac, UMA) == {"day": EXACT, "month": EXACT}
        today = dt.datetime.now(dt.timezone.utc).date()
        assert ledger.rows == [(today, "uma", "user", int(EXACT * M), 1)]

    def test_a_second_read_settles_nothing_more(self, make: Make, fake_claude: FakeClaude) -> None:
        ledger = Ledger()
        rbac = make(spend_recorder=ledger)
        claude = rbac.client(UMA)
        batch_id = claude.messages.batches.create(requests=script(fake_claude)).id
        for _ in range(3):
            assert len(read(claude, batch_id)) == 4
        assert used(rbac, UMA) == {"day": EXACT, "month": EXACT}
        assert sum(row[3] for row in ledger.rows) == int(EXACT * M)

    def test_concurrent_reads_settle_once(self, make: Make, fake_claude: FakeClaude) -> None:
        creator = make()
        batch_id = creator.client(UMA).messages.batches.create(requests=script(fake_claude)).id
        clients = [creator.client(UMA) for _ in range(4)]
        barrier = threading.Barrier(len(clients))
        answers: list[int] = []

        def reader(client: anthropic.Anthropic) -> None:
            barrier.wait(5)
            answers.append(len(read(client, batch_id)))

        threads = [threading.Thread(target=reader, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert answers == [4, 4, 4, 4]
        assert used(creator, UMA) == {"day": EXACT, "month": EXACT}

    def test_an_admin_reading_settles_the_creators_windows(self, make: Make, fake_claude: FakeClaude) -> None:
        ledger = Ledger()
        rbac = make(spend_recorder=ledger)
        batch_id = rbac.client(UMA).messages.batches.create(requests=script(fake_claude)).id
        assert len(read(rbac.client(ADA), batch_id)) == 4
        assert used(rbac, UMA) == {"day": EXACT, "month": EXACT}
        assert used(rbac, ADA) == {"day": 0, "month": 0}
        assert [row[1:] for row in ledger.rows] == [("uma", "user", int(EXACT * M), 1)]

    def test_an_errored_batch_costs_nothing(self, make: Make, fake_claude: FakeClaude) -> None:
        rbac = make()
        claude = rbac.client(UMA)
        fake_claude.script_batch_outcome("a", "errored")
        fake_claude.script_batch_outcome("b", "expired")
        params = {"model": HAIKU, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
        batch_id = claude.messages.batches.create(
            requests=[{"custom_id": "a", "params": params}, {"custom_id": "b", "params": params}]
        ).id
        assert used(rbac, UMA)["day"] > 0
        assert read(claude, batch_id) == ["errored", "expired"]
        assert used(rbac, UMA) == {"day": 0, "month": 0}

    def test_async_results_settle_too(self, make: Make, fake_claude: FakeClaude) -> None:
        rbac = make()
        requests = script(fake_claude)

        async def main() -> list[str]:
            claude = rbac.async_client(UMA)
            batch_id = (await claude.messages.batches.create(requests=requests)).id  # type: ignore[arg-type]
            lines = [line.result.type async for line in await claude.messages.batches.results(batch_id)]
            await rbac.aclose()
            return sorted(lines)

        assert asyncio.run(main()) == ["errored", "succeeded", "succeeded", "succeeded"]
        assert used(rbac, UMA) == {"day": EXACT, "month": EXACT}


class TestKeepsTheReservation:
    def test_results_read_in_part_keep_it_until_read_whole(self, make: Make, fake_claude: FakeClaude) -> None:
        rbac = make()
        claude = rbac.client(UMA)
        batch_id = claude.messages.batches.create(requests=script(fake_claude)).id
        reserved = used(rbac, UMA)
        results = claude.messages.batches.results(batch_id)
        next(iter(results))
        results.close()
        assert used(rbac, UMA) == reserved
        assert len(read(claude, batch_id)) == 4
        assert used(rbac, UMA) == {"day": EXACT, "month": EXACT}

    def test_a_result_that_cannot_be_priced_keeps_it(
        self, make: Make, fake_claude: FakeClaude, caplog: pytest.LogCaptureFixture
    ) -> None:
        rbac = make()
        claude = rbac.client(UMA)
        fake_claude.script_usage({"input_tokens": -5}, custom_id="bad")
        params = {"model": HAIKU, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
        batch_id = claude.messages.batches.create(requests=[{"custom_id": "bad", "params": params}]).id
        reserved = used(rbac, UMA)
        with caplog.at_level(logging.WARNING, "claude_rbac"):
            assert read(claude, batch_id) == ["succeeded"]
        assert used(rbac, UMA) == reserved
        assert "keeps its reservation" in caplog.text


def test_another_worker_on_the_same_redis_settles_nothing_more(
    fake_claude: FakeClaude, redis_url: str, key_prefix: str
) -> None:
    options = {"storage": redis_url, "key_prefix": key_prefix, "api_key": KEY, "base_url": fake_claude.url}
    workers = [RBAC(POLICY, **options) for _ in range(3)]
    try:
        batch_id = workers[0].client(UMA).messages.batches.create(requests=script(fake_claude)).id
        barrier = threading.Barrier(2)
        answers: list[int] = []

        def reader(rbac: RBAC) -> None:
            barrier.wait(5)
            answers.append(len(read(rbac.client(UMA), batch_id)))

        threads = [threading.Thread(target=reader, args=(rbac,)) for rbac in workers[1:]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert answers == [4, 4]
        assert len(read(workers[0].client(UMA), batch_id)) == 4
        for rbac in workers:
            rbac.flush()
        assert used(workers[0], UMA) == {"day": EXACT, "month": EXACT}
    finally:
        for rbac in workers:
            rbac.close()


def test_a_storage_failure_never_fails_the_read(
    fake_claude: FakeClaude, redis_url: str, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    options = {"key_prefix": key_prefix, "api_key": KEY, "base_url": fake_claude.url}
    creator = RBAC(POLICY, storage=redis_url, **options)
    down = RBAC(POLICY, storage="redis://127.0.0.1:1", **options)  # nothing listens there
    try:
        batch_id = creator.client(UMA).messages.batches.create(requests=script(fake_claude)).id
        reserved = used(creator, UMA)
        with caplog.at_level(logging.WARNING, "claude_rbac"):
            assert len(read(down.client(ADA), batch_id)) == 4  # an admin: no owner check, only the settlement
        assert "could not settle a batch's dollars" in caplog.text
        assert used(creator, UMA) == reserved
        assert len(read(creator.client(UMA), batch_id)) == 4
        assert used(creator, UMA) == {"day": EXACT, "month": EXACT}
    finally:
        creator.close()
        down.close()


def test_results_read_the_next_day_settle_the_month_and_land_on_that_day(fake_claude: FakeClaude) -> None:
    ledger = Ledger()
    created = dt.datetime(2026, 11, 14, 23, 59, tzinfo=dt.timezone.utc).timestamp()
    now = [created]
    rbac = RBAC(
        POLICY,
        api_key=KEY,
        base_url=fake_claude.url,
        storage_options={"clock": lambda: now[0]},
        spend_recorder=ledger,
    )
    try:
        claude = rbac.client(UMA)
        batch_id = claude.messages.batches.create(requests=script(fake_claude)).id
        reserved = used(rbac, UMA)
        assert reserved["day"] == reserved["month"] > EXACT
        now[0] = created + 120  # 00:01 the next day: yesterday's window has ended and takes nothing back
        assert len(read(claude, batch_id)) == 4
        assert used(rbac, UMA) == {"day": 0, "month": EXACT}
        assert ledger.rows == [(dt.date(2026, 11, 15), "uma", "user", int(EXACT * M), 1)]
    finally:
        rbac.close()
