"""Properties of pricing that hold for every shipped model and any usage (hypothesis)."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from claude_rbac.policy.prices import (
    BillableUsage,
    CacheCreation,
    ModelPrice,
    ServerToolUse,
    cost,
    price_for,
    shipped_prices,
    worst_case,
)

M = 1_000_000


def priced(model: str) -> ModelPrice:
    price = price_for(model)
    assert price is not None, model
    return price


COMPLETE = sorted(p for p, e in shipped_prices().entries.items() if e.rates.cache_read is not None)
counts = st.integers(min_value=0, max_value=2_000_000)
usages = st.builds(
    BillableUsage,
    input_tokens=counts,
    output_tokens=counts,
    cache_creation_input_tokens=st.none(),
    cache_creation=st.builds(CacheCreation, counts, counts),
    cache_read_input_tokens=counts,
    server_tool_use=st.builds(ServerToolUse, st.integers(0, 100), st.integers(0, 100)),
    inference_geo=st.sampled_from([None, "global"]),
)
KINDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "5m", "1h")


def grown(usage: BillableUsage, kind: str, more: int) -> BillableUsage:
    split_now = usage.cache_creation or CacheCreation()
    if kind == "5m":
        return BillableUsage(
            **{
                **vars_of(usage),
                "cache_creation": CacheCreation(
                    split_now.ephemeral_5m_input_tokens + more, split_now.ephemeral_1h_input_tokens
                ),
            }
        )
    if kind == "1h":
        return BillableUsage(
            **{
                **vars_of(usage),
                "cache_creation": CacheCreation(
                    split_now.ephemeral_5m_input_tokens, split_now.ephemeral_1h_input_tokens + more
                ),
            }
        )
    return BillableUsage(**{**vars_of(usage), kind: (getattr(usage, kind) or 0) + more})


def vars_of(usage: BillableUsage) -> dict[str, Any]:
    return {name: getattr(usage, name) for name in BillableUsage.__dataclass_fields__}


@given(st.sampled_from(COMPLETE), usages, st.sampled_from(KINDS), st.integers(1, 500_000))
def test_cost_never_falls_when_any_count_grows(model: str, usage: BillableUsage, kind: str, more: int) -> None:
    price = priced(model)
    assert cost(grown(usage, kind, more), price).dollars >= cost(usage, price).dollars


@given(st.sampled_from(COMPLETE), usages, st.booleans())
def test_stored_micro_dollars_are_the_exact_cost_rounded_up_by_less_than_one(
    model: str, usage: BillableUsage, batch: bool
) -> None:
    priced_call = cost(BillableUsage(**{**vars_of(usage), "batch": batch}), priced(model))
    excess = D(priced_call.micro_dollars) - priced_call.dollars * M
    assert 0 <= excess < 1


@given(st.sampled_from(COMPLETE), usages)
def test_batch_is_exactly_half_of_every_token_and_none_of_the_tools(model: str, usage: BillableUsage) -> None:
    price = priced(model)
    assert price.batch == D("0.5")
    standard = dict(cost(usage, price).parts)
    batched = dict(cost(BillableUsage(**{**vars_of(usage), "batch": True}), price).parts)
    assert standard.keys() == batched.keys()
    for kind, amount in standard.items():
        assert batched[kind] == (amount if kind in ("web_search", "web_fetch") else amount / 2)


@given(
    st.sampled_from(COMPLETE),
    st.integers(0, 400_000),
    st.integers(0, 64_000),
    st.sampled_from(["5m", "1h"]),
    st.data(),
)
def test_a_call_within_its_reservation_never_costs_more_than_the_worst_case(
    model: str, prompt: int, max_tokens: int, ttl: str, data: st.DataObject
) -> None:
    read = data.draw(st.integers(0, prompt))
    five = data.draw(st.integers(0, prompt - read))
    hour = data.draw(st.integers(0, prompt - read - five)) if ttl == "1h" else 0
    searches = data.draw(st.integers(0, 10))
    usage = BillableUsage(
        input_tokens=prompt - read - five - hour,
        output_tokens=data.draw(st.integers(0, max_tokens)),
        cache_creation=CacheCreation(five, hour),
        cache_read_input_tokens=read,
        server_tool_use=ServerToolUse(data.draw(st.integers(0, searches)), 0),
        inference_geo="us" if priced(model).inference_geo else None,
    )
    reserved = worst_case(
        priced(model),
        input_tokens=prompt,
        max_tokens=max_tokens,
        cache_ttl=ttl,  # type: ignore[arg-type]
        tool_uses={"web_search": searches},
    )
    assert cost(usage, priced(model)).micro_dollars <= reserved.micro_dollars
