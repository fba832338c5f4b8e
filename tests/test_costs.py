"""Pricing calls exactly: scripted usages against hand-computed Decimal sums, and the properties.

Each expected value is the pricing page's arithmetic written out: tokens x $/MTok / 10**6, times
the multipliers that apply, plus $0.01 a web search.
"""

from __future__ import annotations

import math
from decimal import Decimal as D
from typing import Any

import anthropic
import pytest
from anthropic.types import CacheCreation as SdkCacheCreation
from anthropic.types import MessageDeltaUsage, ServerToolUsage, Usage
from anthropic.types.beta import BetaUsage

from claude_rbac.policy.prices import (
    BillableUsage,
    CacheCreation,
    MissingPrice,
    ModelPrice,
    ServerToolUse,
    cost,
    price_for,
    worst_case,
)
from claude_rbac.testing import FakeClaude

M = 1_000_000
US = D("1.1")


def priced(model: str) -> ModelPrice:
    price = price_for(model)
    assert price is not None, model
    return price


def split(five: int, hour: int) -> dict[str, Any]:
    return {"cache_creation": CacheCreation(five, hour), "cache_creation_input_tokens": five + hour}


CASES = [
    ("claude-opus-4-7", BillableUsage(input_tokens=1000, output_tokens=500), {}, D(5) * 1000 / M + D(25) * 500 / M),
    (
        "claude-sonnet-4-6",
        BillableUsage(input_tokens=10, output_tokens=20, **split(4000, 0)),
        {},
        D(3) * 10 / M + D("3.75") * 4000 / M + D(15) * 20 / M,
    ),
    (
        "claude-sonnet-4-6",
        BillableUsage(input_tokens=10, output_tokens=20, **split(0, 4000)),
        {},
        D(3) * 10 / M + D(6) * 4000 / M + D(15) * 20 / M,
    ),
    (
        "claude-haiku-4-5",
        BillableUsage(input_tokens=7, output_tokens=3, cache_read_input_tokens=9000, **split(1500, 2500)),
        {},
        D(1) * 7 / M + D("1.25") * 1500 / M + D(2) * 2500 / M + D("0.10") * 9000 / M + D(5) * 3 / M,
    ),
    # No TTL split: the 5-minute rate, the documented default TTL.
    (
        "claude-opus-4-7",
        BillableUsage(input_tokens=0, output_tokens=0, cache_creation_input_tokens=3000),
        {},
        D("6.25") * 3000 / M,
    ),
    # ...unless the caller knows the request asked for one hour.
    ("claude-opus-4-7", BillableUsage(cache_creation_input_tokens=3000), {"unsplit_cache_ttl": "1h"}, D(10) * 3000 / M),
    # A total the split does not account for: the rest at the default TTL.
    (
        "claude-opus-4-7",
        BillableUsage(cache_creation_input_tokens=5000, cache_creation=CacheCreation(1000, 2000)),
        {},
        D("6.25") * 1000 / M + D(10) * 2000 / M + D("6.25") * 2000 / M,
    ),
    (
        "claude-fable-5-1",
        BillableUsage(input_tokens=100, output_tokens=100, cache_read_input_tokens=200_000),
        {},
        D(10) * 100 / M + D("0.25") * 200_000 / M + D(50) * 100 / M,
    ),
    (
        "claude-opus-5-5",
        BillableUsage(cache_read_input_tokens=50_000, output_tokens=10),
        {},
        D("0.20") * 50_000 / M + D(20) * 10 / M,
    ),
    ("claude-sonnet-5-5", BillableUsage(cache_read_input_tokens=50_000), {}, D("0.10") * 50_000 / M),
    ("claude-fable-5-2", BillableUsage(input_tokens=1234, output_tokens=567), {}, D(8) * 1234 / M + D(40) * 567 / M),
    # Batch: half of every token part, cache parts included.
    (
        "claude-sonnet-4-6",
        BillableUsage(input_tokens=2000, output_tokens=1000, batch=True, **split(1000, 1000)),
        {},
        (D(3) * 2000 / M + D("3.75") * 1000 / M + D(6) * 1000 / M + D(15) * 1000 / M) * D("0.5"),
    ),
    (
        "claude-haiku-4-5",
        BillableUsage(input_tokens=3, output_tokens=5, service_tier="batch"),
        {},
        (D(1) * 3 / M + D(5) * 5 / M) * D("0.5"),
    ),
    # Fast mode: Opus 5.5 at $8/$40, with the cache multipliers on top of it.
    (
        "claude-opus-5-5",
        BillableUsage(input_tokens=1000, output_tokens=1000, speed="fast", **split(1000, 0)),
        {},
        D(8) * 1000 / M + D(8) * D("1.25") * 1000 / M + D(40) * 1000 / M,
    ),
    (
        "claude-opus-4-8",
        BillableUsage(input_tokens=1000, output_tokens=1000, speed="fast"),
        {},
        D(10) * 1000 / M + D(50) * 1000 / M,
    ),
    (
        "claude-opus-4-6",
        BillableUsage(input_tokens=1000, output_tokens=1000, speed="fast"),
        {},
        D(5) * 1000 / M + D(25) * 1000 / M,
    ),
    # US-only inference: 1.1x on every token category.
    (
        "claude-opus-4-7",
        BillableUsage(
            input_tokens=1000, output_tokens=100, inference_geo="us", cache_read_input_tokens=10, **split(100, 100)
        ),
        {},
        (D(5) * 1000 / M + D("6.25") * 100 / M + D(10) * 100 / M + D("0.50") * 10 / M + D(25) * 100 / M) * US,
    ),
    (
        "claude-sonnet-4-6",
        BillableUsage(input_tokens=1000, output_tokens=100, inference_geo="global"),
        {},
        D(3) * 1000 / M + D(15) * 100 / M,
    ),
    (
        "claude-opus-5",
        BillableUsage(input_tokens=1000, output_tokens=100, speed="fast", inference_geo="us"),
        {},
        (D(10) * 1000 / M + D(50) * 100 / M) * US,
    ),
    (
        "claude-sonnet-5",
        BillableUsage(input_tokens=1000, output_tokens=100, batch=True, inference_geo="us"),
        {},
        (D(2) * 1000 / M + D(10) * 100 / M) * D("0.5") * US,
    ),
    # Haiku 5.5: a prompt (input + cache writes + cache reads) of exactly 100,000 tokens is not over it...
    (
        "claude-haiku-5-5",
        BillableUsage(input_tokens=60_000, cache_read_input_tokens=40_000, output_tokens=1000),
        {},
        D("0.10") * 60_000 / M + D("0.01") * 40_000 / M + D("0.50") * 1000 / M,
    ),
    # ...one more token is, and every token of the request, output too, moves to the higher rates.
    (
        "claude-haiku-5-5",
        BillableUsage(input_tokens=60_000, cache_read_input_tokens=40_000, output_tokens=1000, **split(1, 0)),
        {},
        D("0.50") * 60_000 / M + D("0.625") * 1 / M + D("0.05") * 40_000 / M + D("2.50") * 1000 / M,
    ),
    (
        "claude-haiku-5-5",
        BillableUsage(input_tokens=200_000, output_tokens=1000, batch=True),
        {},
        (D("0.50") * 200_000 / M + D("2.50") * 1000 / M) * D("0.5"),
    ),
    # Server tools: $10 per 1,000 web searches, web fetch free; neither takes the batch discount.
    (
        "claude-sonnet-4-6",
        BillableUsage(input_tokens=1000, output_tokens=100, server_tool_use=ServerToolUse(3, 2)),
        {},
        D(3) * 1000 / M + D(15) * 100 / M + 3 * D("0.01"),
    ),
    (
        "claude-sonnet-4-6",
        BillableUsage(input_tokens=1000, server_tool_use=ServerToolUse(1, 0), batch=True),
        {},
        D(3) * 1000 / M * D("0.5") + D("0.01"),
    ),
    # One cache read on Haiku 4.5 is $0.0000001: stored as one whole micro-dollar.
    ("claude-haiku-4-5", BillableUsage(cache_read_input_tokens=1), {}, D("0.10") / M),
]


CASE_IDS = [
    "input-output",
    "cache-write-5m",
    "cache-write-1h",
    "both-ttls-and-reads",
    "unsplit-at-default-5m",
    "unsplit-told-1h",
    "split-plus-remainder",
    "fable-5-1-reads-at-0.025x",
    "opus-5-5-reads-at-0.05x",
    "sonnet-5-5-reads",
    "fable-5-2-without-cache",
    "batch-flag",
    "batch-service-tier",
    "fast-opus-5-5",
    "fast-opus-4-8",
    "fast-opus-4-6-at-standard",
    "geo-us",
    "geo-global",
    "fast-and-geo",
    "batch-and-geo",
    "haiku-5-5-at-100k",
    "haiku-5-5-over-100k",
    "haiku-5-5-long-and-batch",
    "web-search-and-fetch",
    "web-search-not-halved",
    "one-cache-read-rounds-up",
]


@pytest.mark.parametrize(("model", "usage", "options", "expected"), CASES, ids=CASE_IDS)
def test_a_scripted_usage_costs_exactly_the_hand_computed_sum(
    model: str, usage: BillableUsage, options: dict[str, Any], expected: D
) -> None:
    priced_call = cost(usage, priced(model), **options)
    assert priced_call.dollars == expected
    assert priced_call.micro_dollars == math.ceil(expected * M)
    assert sum(amount for _, amount in priced_call.parts) == expected


def test_the_sdk_usage_types_are_read_field_for_field() -> None:
    sdk = Usage(
        input_tokens=100,
        output_tokens=50,
        cache_creation_input_tokens=300,
        cache_creation=SdkCacheCreation(ephemeral_5m_input_tokens=100, ephemeral_1h_input_tokens=200),
        cache_read_input_tokens=400,
        server_tool_use=ServerToolUsage(web_search_requests=2, web_fetch_requests=1),
        service_tier="standard",
        speed="standard",
        inference_geo="us",
    )
    usage = BillableUsage.from_api(sdk)
    assert usage == BillableUsage(
        input_tokens=100,
        output_tokens=50,
        cache_creation_input_tokens=300,
        cache_creation=CacheCreation(100, 200),
        cache_read_input_tokens=400,
        server_tool_use=ServerToolUse(2, 1),
        service_tier="standard",
        speed="standard",
        inference_geo="us",
    )
    assert BillableUsage.from_api(sdk.model_dump()) == usage
    assert BillableUsage.from_api(BetaUsage.model_validate(sdk.model_dump())) == usage


def test_a_stream_is_priced_by_its_final_delta_totals() -> None:
    start = BillableUsage.from_api(
        Usage(
            input_tokens=2000,
            output_tokens=1,
            cache_creation_input_tokens=500,
            cache_creation=SdkCacheCreation(ephemeral_5m_input_tokens=0, ephemeral_1h_input_tokens=500),
        )
    )
    first = MessageDeltaUsage(output_tokens=40)
    final = MessageDeltaUsage(
        output_tokens=321,
        input_tokens=2000,
        cache_creation_input_tokens=500,
        cache_read_input_tokens=0,
        server_tool_use=ServerToolUsage(web_search_requests=2, web_fetch_requests=0),
    )
    usage = start.updated(first).updated(final)
    expected = D(3) * 2000 / M + D(6) * 500 / M + D(15) * 321 / M + 2 * D("0.01")
    assert cost(usage, priced("claude-sonnet-4-6")).dollars == expected


def test_a_real_stream_through_the_sdk_costs_what_its_final_message_does() -> None:
    with FakeClaude(output_tokens=7, cache_read_input_tokens=1200) as fake:
        client = anthropic.Anthropic(api_key="test", base_url=fake.url)
        usage: BillableUsage | None = None
        with client.messages.stream(
            model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
        ) as stream:
            for event in stream:
                if event.type == "message_start":
                    usage = BillableUsage.from_api(event.message.usage)
                elif event.type == "message_delta":
                    assert usage is not None
                    usage = usage.updated(event.usage)
            final = stream.get_final_message()
    assert usage is not None
    assert usage.output_tokens == 7
    price = priced("claude-haiku-4-5")
    assert cost(usage, price) == cost(BillableUsage.from_api(final.usage), price)
    assert cost(usage, price).dollars == D(1) * usage.input_tokens / M + D("0.10") * 1200 / M + D(5) * 7 / M


@pytest.mark.parametrize(
    ("model", "usage", "missing"),
    [
        ("claude-fable-5-2", BillableUsage(cache_read_input_tokens=1), "cache_read"),
        ("claude-opus-4-7", BillableUsage(input_tokens=1, speed="fast"), "fast mode"),
        ("claude-haiku-4-5", BillableUsage(input_tokens=1, inference_geo="us"), "inference_geo='us'"),
        ("claude-opus-4-7", BillableUsage(input_tokens=1, inference_geo="eu"), "inference_geo='eu'"),
        ("claude-opus-4-7", BillableUsage(input_tokens=1, service_tier="priority"), "Priority Tier"),
    ],
)
def test_a_price_nobody_published_is_refused_never_taken_as_zero(
    model: str, usage: BillableUsage, missing: str
) -> None:
    with pytest.raises(MissingPrice, match=missing):
        cost(usage, priced(model))


def test_impossible_usages_are_errors() -> None:
    with pytest.raises(ValueError, match="neither in fast mode"):
        cost(BillableUsage(input_tokens=1, batch=True, speed="fast"), priced("claude-opus-5-5"))
    with pytest.raises(ValueError, match="more than cache_creation_input_tokens"):
        cost(
            BillableUsage(cache_creation_input_tokens=1, cache_creation=CacheCreation(2, 0)), priced("claude-opus-4-7")
        )
    with pytest.raises(ValueError, match=r"usage\.input_tokens"):
        BillableUsage(input_tokens=-1)
    with pytest.raises(ValueError, match=r"usage\.service_tier"):
        BillableUsage(service_tier="gold")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"usage\.output_tokens"):
        BillableUsage.from_api({"input_tokens": 1, "output_tokens": "12"})


def test_the_worst_case_prices_the_prompt_at_its_dearest_cache_write_and_max_tokens_at_output() -> None:
    opus = priced("claude-opus-4-7")
    plain = worst_case(opus, input_tokens=10_000, max_tokens=1000, inference_geo="global")
    assert plain.dollars == D(5) * 10_000 / M + D(25) * 1000 / M
    five = worst_case(opus, input_tokens=10_000, max_tokens=1000, cache_ttl="5m", inference_geo="global")
    assert five.dollars == D("6.25") * 10_000 / M + D(25) * 1000 / M
    hour = worst_case(
        opus, input_tokens=10_000, max_tokens=1000, cache_ttl="1h", tool_uses={"web_search": 5, "web_fetch": 9}
    )
    assert hour.dollars == (D(10) * 10_000 / M + D(25) * 1000 / M) * US + 5 * D("0.01")
    batch = worst_case(opus, input_tokens=10_000, max_tokens=1000, batch=True, inference_geo="global")
    assert batch.dollars == plain.dollars / 2
    haiku = worst_case(priced("claude-haiku-5-5"), input_tokens=150_000, max_tokens=2000, service_tier="batch")
    assert haiku.dollars == (D("0.50") * 150_000 / M + D("2.50") * 2000 / M) * D("0.5") * US


def test_the_worst_case_refuses_what_it_cannot_price() -> None:
    fable = priced("claude-fable-5-2")
    assert worst_case(fable, input_tokens=100, max_tokens=10).dollars == (D(8) * 100 / M + D(40) * 10 / M) * US
    with pytest.raises(MissingPrice, match="cache_write_1h"):
        worst_case(fable, input_tokens=100, max_tokens=10, cache_ttl="1h")
    with pytest.raises(MissingPrice, match="code_execution"):
        worst_case(priced("claude-opus-4-7"), input_tokens=1, max_tokens=1, tool_uses={"code_execution": 1})
    with pytest.raises(ValueError, match="max_tokens"):
        worst_case(fable, input_tokens=1, max_tokens=-5)
