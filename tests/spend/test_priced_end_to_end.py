"""Scripted usages priced end to end: FakeClaude answers, the real SDK reads, the governor settles, rbac.spend reads.

Every expected figure is computed by hand from the shipped price table (US dollars per million tokens):
haiku 4.5 $1 in / $5 out / $1.25 5m write / $2 1h write / $0.10 read; sonnet 4.6 $3 / $15 / $3.75 / $6 /
$0.30, us geo x1.1; opus 4.7 $5 / $25 / $6.25 / $10 / $0.50, us geo x1.1; opus 4.8 as opus 4.7 with fast
mode at $10 / $50 (x2); batch x0.5; web search $0.01 a use, web fetch free.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from claude_rbac import RBAC, Principal
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-spend-tests-000000000000000000000000000000-SPND"
ALICE = Principal("alice", "spender")
MODELS = ["claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-7", "claude-opus-4-8"]
ROLE = {
    "models": MODELS,
    "spend": {"month": 1000},
    "speeds": ["standard", "fast"],
    "inference_geos": ["us", "global"],
    "tools": ["custom", "web_search_*", "web_fetch_*"],
}
PRICES = {"claude-sonnet-4-6": {"priority": 1.5}}  # a made-up Priority Tier price, as a policy may set one
M = Decimal(1_000_000)


def usage(
    input_tokens: int = 0,
    output_tokens: int = 0,
    write_5m: int = 0,
    write_1h: int = 0,
    read: int = 0,
    *,
    tier: str = "standard",
    geo: str = "global",
    speed: str | None = None,
    searches: int = 0,
    fetches: int = 0,
) -> dict[str, Any]:
    scripted: dict[str, Any] = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": write_5m, "ephemeral_1h_input_tokens": write_1h},
        "cache_read_input_tokens": read,
        "service_tier": tier,
        "inference_geo": geo,
        "speed": speed,
    }
    if searches or fetches:
        scripted["server_tool_use"] = {"web_search_requests": searches, "web_fetch_requests": fetches}
    return scripted


# (id, model, scripted usage, stream, expected dollars)
CASES: list[tuple[str, str, Mapping[str, Any], bool, Decimal]] = [
    ("haiku input", "claude-haiku-4-5", usage(1000), False, Decimal(1000) * 1 / M),
    ("haiku output", "claude-haiku-4-5", usage(0, 777), False, Decimal(777) * 5 / M),
    ("haiku both", "claude-haiku-4-5", usage(1234, 567), False, (1234 * Decimal(1) + 567 * Decimal(5)) / M),
    ("haiku 5m write", "claude-haiku-4-5", usage(10, 1, write_5m=4000), False, (10 + 5 + 4000 * Decimal("1.25")) / M),
    ("haiku 1h write", "claude-haiku-4-5", usage(10, 1, write_1h=4000), False, (10 + 5 + 4000 * Decimal(2)) / M),
    (
        "haiku both TTLs and a read",
        "claude-haiku-4-5",
        usage(7, 3, write_5m=100, write_1h=200, read=5000),
        False,
        (7 + 15 + 100 * Decimal("1.25") + 200 * Decimal(2) + 5000 * Decimal("0.10")) / M,
    ),
    ("haiku cache read", "claude-haiku-4-5", usage(3, 2, read=123_456), False, (3 + 10 + 123_456 * Decimal("0.1")) / M),
    ("sonnet", "claude-sonnet-4-6", usage(2000, 300), False, (2000 * Decimal(3) + 300 * Decimal(15)) / M),
    (
        "sonnet cache",
        "claude-sonnet-4-6",
        usage(1, 1, write_5m=3, write_1h=7, read=11),
        False,
        (3 + 15 + 3 * Decimal("3.75") + 7 * Decimal(6) + 11 * Decimal("0.30")) / M,
    ),
    (
        "sonnet us geo",
        "claude-sonnet-4-6",
        usage(1000, 100, read=1000, geo="us"),
        False,
        (1000 * Decimal(3) + 100 * Decimal(15) + 1000 * Decimal("0.3")) * Decimal("1.1") / M,
    ),
    (
        "sonnet priority (a policy price)",
        "claude-sonnet-4-6",
        usage(1000, 100, tier="priority"),
        False,
        (1000 * Decimal(3) + 100 * Decimal(15)) * Decimal("1.5") / M,
    ),
    (
        "sonnet batch",
        "claude-sonnet-4-6",
        usage(1000, 100, write_1h=10, tier="batch"),
        False,
        (1000 * Decimal(3) + 100 * Decimal(15) + 10 * Decimal(6)) * Decimal("0.5") / M,
    ),
    ("opus", "claude-opus-4-7", usage(999, 333), False, (999 * Decimal(5) + 333 * Decimal(25)) / M),
    (
        "opus us geo with both TTLs",
        "claude-opus-4-7",
        usage(10, 20, write_5m=30, write_1h=40, geo="us"),
        False,
        (50 + 500 + 30 * Decimal("6.25") + 400) * Decimal("1.1") / M,
    ),
    (
        "opus 4.8 fast",
        "claude-opus-4-8",
        usage(1000, 100, write_5m=100, speed="fast"),
        False,
        (1000 * Decimal(5) + 100 * Decimal(25) + 100 * Decimal("6.25")) * 2 / M,
    ),
    (
        "opus 4.8 fast in the us",
        "claude-opus-4-8",
        usage(1000, 100, speed="fast", geo="us"),
        False,
        (1000 * Decimal(5) + 100 * Decimal(25)) * 2 * Decimal("1.1") / M,
    ),
    ("web search", "claude-haiku-4-5", usage(100, 10, searches=3), False, (100 + 50) / M + 3 * Decimal("0.01")),
    ("web fetch is free", "claude-haiku-4-5", usage(100, 10, fetches=4), False, (100 + 50) / M),
    ("stream haiku", "claude-haiku-4-5", usage(1500, 250), True, (1500 + 250 * Decimal(5)) / M),
    (
        "stream with cache and tools",
        "claude-sonnet-4-6",
        usage(5, 6, write_5m=7, write_1h=8, read=9, searches=2),
        True,
        (15 + 90 + 7 * Decimal("3.75") + 48 + 9 * Decimal("0.3")) / M + Decimal("0.02"),
    ),
    (
        "stream opus us",
        "claude-opus-4-7",
        usage(100, 100, read=100, geo="us"),
        True,
        (500 + 2500 + 50) * Decimal("1.1") / M,
    ),
    ("one micro-dollar rounds up", "claude-haiku-4-5", usage(1), False, Decimal("0.000001")),
    ("a third of a micro-dollar rounds up", "claude-haiku-4-5", usage(0, 0, read=3), False, Decimal("0.000001")),
]


def exact(body: Mapping[str, Any]) -> int:
    return 100


def settled(rbac: RBAC) -> Decimal:
    (window,) = rbac.spend(ALICE)
    return window.used


@pytest.mark.parametrize(("model", "scripted", "stream", "dollars"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_scripted_usage_settles_at_its_hand_computed_price(
    model: str, scripted: Mapping[str, Any], stream: bool, dollars: Decimal
) -> None:
    expected_micro = (dollars * M).to_integral_value(rounding="ROUND_CEILING")
    with FakeClaude() as fake:
        rbac = RBAC(
            {"roles": {"spender": ROLE}, "prices": PRICES}, api_key=KEY, base_url=fake.url, token_estimator=exact
        )
        fake.script_usage(scripted)
        client = rbac.client(ALICE)
        kwargs: dict[str, Any] = {"model": model, "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}
        if stream:
            with client.messages.stream(**kwargs) as events:
                events.get_final_message()
        else:
            client.messages.create(**kwargs)
        assert settled(rbac) * M == expected_micro
        rbac.close()


def test_the_table_has_at_least_twenty_usages() -> None:
    assert len(CASES) >= 20
    assert {c[3] for c in CASES} == {True, False}


def test_priority_without_a_price_keeps_the_reservation() -> None:
    with FakeClaude() as fake:
        rbac = RBAC({"roles": {"spender": ROLE}}, api_key=KEY, base_url=fake.url, token_estimator=exact)
        fake.script_usage(usage(1000, 100, tier="priority"))
        rbac.client(ALICE).messages.create(
            model="claude-haiku-4-5", max_tokens=1000, messages=[{"role": "user", "content": "hi"}]
        )
        # Reserved: 100 input tokens at the dearer of input and nothing cached ($1/M) + 1000 output at $5/M.
        assert settled(rbac) == Decimal("0.0051")
        rbac.close()


def test_a_batch_reserves_each_item_at_batch_rates() -> None:
    with FakeClaude() as fake:
        rbac = RBAC({"roles": {"spender": ROLE}}, api_key=KEY, base_url=fake.url, token_estimator=exact)
        params = {"model": "claude-sonnet-4-6", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}
        requests = [{"custom_id": f"r{i}", "params": params} for i in range(3)]
        rbac.client(ALICE).messages.batches.create(requests=requests)  # type: ignore[arg-type]
        # Each: (100 x $3 + 1000 x $15) / M x 1.1 (no inference_geo: the dearest geo) x 0.5 (batch).
        each = (100 * Decimal(3) + 1000 * Decimal(15)) * Decimal("1.1") * Decimal("0.5") / M
        assert settled(rbac) == 3 * each
        rbac.close()
