"""The RBAC's spend ledger, end to end: scripted usage, governed calls, ledger rows equal to hand-computed dollars.

Prices (``prices.toml``, per MTok): haiku-4-5 input $1, output $5, cache write 5m $1.25, 1h $2, read $0.10;
sonnet-4-6 input $3, output $15; web search $10 per 1,000. Each call's cost is rounded up once to whole
micro-dollars; the ledger sums those integers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import time
from decimal import Decimal
from typing import Any

import pytest

from claude_rbac import RBAC, Policy, Principal
from claude_rbac.cli import main
from claude_rbac.quota import LedgerRow, SpendLedger
from claude_rbac.testing import FakeClaude
from claude_rbac.testing.otel import global_span_exporter
from tests.support.redis import RedisServer
from tests.support.tcp_proxy import TcpProxy

KEY = "sk-ant-api03-ledger-tests-00000000000000000000000000000-wxyz"
MESSAGES = [{"role": "user", "content": "hi"}]
HAIKU, SONNET = "claude-haiku-4-5", "claude-sonnet-4-6"
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
POLICY = {
    "roles": {
        "user": {"models": ["claude-haiku-4-5"], "max_tokens": 100, "spend": {"day": 1.00}},
        "power": {
            "inherits": "user",
            "models": ["claude-sonnet-4-6"],
            "tools": ["web_search"],
            "spend": {"day": 5.00},
        },
        "free": {"models": ["claude-haiku-4-5"], "max_tokens": 100},  # no spend limit: its calls are not priced
    }
}
UMA, ULF, PAUL = Principal("uma", "user"), Principal("ulf", "user"), Principal("paul", "power")

# (principal, model, scripted usage, exact dollars by hand)
CALLS: list[tuple[Principal, str, dict[str, Any], Decimal]] = [
    # 1000 x $1 + 200 x $5, per MTok
    (UMA, HAIKU, {"input_tokens": 1000, "output_tokens": 200}, Decimal("0.002")),
    # 10 x $1 + 2000 x $1.25 (5m) + 1000 x $2 (1h) + 5000 x $0.10 + 50 x $5
    (
        UMA,
        HAIKU,
        {
            "input_tokens": 10,
            "cache_creation_input_tokens": 3000,
            "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 1000},
            "cache_read_input_tokens": 5000,
            "output_tokens": 50,
        },
        Decimal("0.00526"),
    ),
    # 3 x $1 + 3 x $0.10 = $0.0000033, rounded up once to $0.000004
    (ULF, HAIKU, {"input_tokens": 3, "cache_read_input_tokens": 3, "output_tokens": 0}, Decimal("0.000004")),
    # 100 x $3 + 100 x $15 + 2 searches x $0.01
    (
        PAUL,
        SONNET,
        {"input_tokens": 100, "output_tokens": 100, "server_tool_use": {"web_search_requests": 2}},
        Decimal("0.0218"),
    ),
]


def _micro(amount: Decimal) -> int:
    return int(amount * 1_000_000)


def _expected() -> set[LedgerRow]:
    totals: dict[tuple[str, str], list[int]] = {}
    for principal, _, _, amount in CALLS:
        row = totals.setdefault((principal.id, str(principal.role)), [0, 0])
        row[0] += _micro(amount)
        row[1] += 1
    return {LedgerRow(who, role, micro, calls) for (who, role), (micro, calls) in totals.items()}


def _request(model: str) -> dict[str, Any]:
    extra = {"tools": [WEB_SEARCH]} if model == SONNET else {}
    return {"model": model, "max_tokens": 50, "messages": MESSAGES, **extra}


def _rbac(storage: str, fake: FakeClaude, key_prefix: str, **kwargs: Any) -> RBAC:
    return RBAC(
        Policy.from_dict(POLICY), storage=storage, key_prefix=key_prefix, api_key=KEY, base_url=fake.url, **kwargs
    )


def test_sync_calls_and_a_stream_land_in_the_ledger_to_the_micro_dollar(
    storage: str, fake_claude: FakeClaude, key_prefix: str
) -> None:
    rbac = _rbac(storage, fake_claude, key_prefix)
    for index, (principal, model, usage, _) in enumerate(CALLS):
        fake_claude.script_usage(usage)
        client = rbac.client(principal)
        if index == 2:  # ulf's call streams: its usage comes from message_start and the final message_delta
            with client.messages.stream(**_request(model)) as stream:
                stream.get_final_message()
        else:
            client.messages.create(**_request(model))
    assert rbac.flush()
    assert rbac.spend_ledger is not None
    report = rbac.spend_ledger.report()
    assert set(report.rows) == _expected()
    assert report.dollars == sum((amount for *_, amount in CALLS), Decimal(0)) == Decimal("0.029064")
    assert [(total.role, total.dollars, total.calls) for total in report.roles] == [
        ("power", Decimal("0.0218"), 1),
        ("user", Decimal("0.007264"), 3),
    ]
    # what the principal's own day window says it used, the ledger says too
    (uma_day,) = [window for window in rbac.spend(UMA) if window.period == "day" and window.scope == "principal"]
    assert uma_day.used == Decimal("0.00726")
    rbac.close()


def test_async_calls_land_in_the_ledger(storage: str, fake_claude: FakeClaude, key_prefix: str) -> None:
    rbac = _rbac(storage, fake_claude, key_prefix)

    async def main() -> None:
        for principal, model, usage, _ in CALLS:
            fake_claude.script_usage(usage)
            await rbac.async_client(principal).messages.create(**_request(model))
        await rbac.aclose()

    asyncio.run(main())
    assert rbac.spend_ledger is not None
    assert set(rbac.spend_ledger.report().rows) == _expected()


def test_the_cli_prints_what_the_ledger_holds(
    redis_url: str, fake_claude: FakeClaude, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rbac = _rbac(redis_url, fake_claude, key_prefix)
    for principal, model, usage, _ in CALLS:
        fake_claude.script_usage(usage)
        rbac.client(principal).messages.create(**_request(model))
    rbac.close()
    assert main(["spend", "--storage", redis_url, "--key-prefix", key_prefix, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    reader = SpendLedger(redis_url, key_prefix=key_prefix)
    assert printed == reader.report().as_dict()
    assert {(row["principal"], Decimal(row["dollars"])) for row in printed["rows"]} == {
        ("paul", Decimal("0.0218")),
        ("uma", Decimal("0.00726")),
        ("ulf", Decimal("0.000004")),
    }
    reader.close()


def test_a_role_without_a_spend_limit_is_not_priced_so_not_in_the_ledger(
    fake_claude: FakeClaude, key_prefix: str
) -> None:
    rbac = _rbac("memory://", fake_claude, key_prefix)
    fake_claude.script_usage({"input_tokens": 1000, "output_tokens": 10})
    rbac.client(Principal("fred", "free")).messages.create(**_request(HAIKU))
    rbac.flush()
    assert rbac.spend_ledger is not None
    assert rbac.spend_ledger.report().rows == ()


def test_hashed_audit_ids_are_what_the_ledger_keeps(fake_claude: FakeClaude, key_prefix: str) -> None:
    exporter = global_span_exporter()
    exporter.clear()
    rbac = _rbac("memory://", fake_claude, key_prefix, audit_user_id="hashed", audit_user_id_key="ledger-test-key")
    fake_claude.script_usage({"input_tokens": 1000, "output_tokens": 0})
    rbac.client(UMA).messages.create(**_request(HAIKU))
    rbac.flush()
    assert rbac.spend_ledger is not None
    (row,) = rbac.spend_ledger.report().rows
    pseudonyms = {
        span.attributes["enduser.pseudo.id"]
        for span in exporter.get_finished_spans()
        if span.attributes and "enduser.pseudo.id" in span.attributes
    }
    assert pseudonyms == {row.principal}
    assert row.principal != "uma" and len(row.principal) == 32
    assert (row.role, row.micro_dollars, row.calls) == ("user", 1000, 1)


def test_with_audit_ids_off_the_ledger_keeps_roles_only(fake_claude: FakeClaude, key_prefix: str) -> None:
    rbac = _rbac("memory://", fake_claude, key_prefix, audit_user_id="off")
    for principal in (UMA, ULF):
        fake_claude.script_usage({"input_tokens": 1000, "output_tokens": 0})
        rbac.client(principal).messages.create(**_request(HAIKU))
    rbac.flush()
    assert rbac.spend_ledger is not None
    assert rbac.spend_ledger.report().rows == (LedgerRow("", "user", 2000, 2),)


def test_an_apps_own_recorder_replaces_the_ledger(fake_claude: FakeClaude, key_prefix: str) -> None:
    got: list[tuple[dt.date, str, str, int, int]] = []

    class Recorder:
        def record(self, day: dt.date, principal: str, role: str, micro_dollars: int, calls: int) -> None:
            got.append((day, principal, role, micro_dollars, calls))

    rbac = _rbac("memory://", fake_claude, key_prefix, spend_recorder=Recorder())
    assert rbac.spend_ledger is None
    fake_claude.script_usage({"input_tokens": 1000, "output_tokens": 0})
    rbac.client(UMA).messages.create(**_request(HAIKU))
    rbac.flush()
    assert got == [(dt.datetime.now(dt.timezone.utc).date(), "uma", "user", 1000, 1)]


def test_the_ledger_can_be_turned_off(fake_claude: FakeClaude, key_prefix: str) -> None:
    rbac = _rbac("memory://", fake_claude, key_prefix, spend_ledger=False)
    assert rbac.spend_ledger is None
    fake_claude.script_usage({"input_tokens": 1000, "output_tokens": 0})
    rbac.client(UMA).messages.create(**_request(HAIKU))  # priced and limited all the same
    assert [w.used for w in rbac.spend(UMA)] == [Decimal("0.001")]


WITHIN = {"input_tokens": 1, "output_tokens": 10}


def test_the_ledger_writes_off_the_request_path_at_most_once_a_second(fake_claude: FakeClaude) -> None:
    """Each call is one round trip; the ledger adds one write per (day, principal, role) per second it drains,
    whatever the number of calls in that second (and one at the final flush)."""
    # within the reservation, so no call owes an excess at once: 1 x $1 + 10 x $5 per MTok = 51 micro-dollars
    with RedisServer() as server, TcpProxy("127.0.0.1", server.port) as proxy:
        rbac = _rbac(proxy.url(), fake_claude, "ledger-round-trips")
        fake_claude.script_usage(WITHIN)
        rbac.client(UMA).messages.create(**_request(HAIKU))  # connects and loads the scripts
        assert rbac.flush()
        proxy.reset()
        started = time.monotonic()
        for _ in range(30):
            fake_claude.script_usage(WITHIN)
            rbac.client(UMA).messages.create(**_request(HAIKU))
        assert rbac.flush()
        seconds = time.monotonic() - started
        ledger_writes = proxy.round_trips - 30
        assert 1 <= ledger_writes <= math.ceil(seconds) + 1
        assert rbac.spend_ledger is not None
        assert rbac.spend_ledger.report().rows == (LedgerRow("uma", "user", 31 * 51, 31),)
        rbac.close()
