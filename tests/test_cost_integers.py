"""The integer path prices every call exactly as the Decimal path does (hypothesis).

``cost_total`` (settling) and ``worst_case_micro`` (reserving) must give the same micro-dollars, and
``cost_total`` the same exact dollars, as ``cost`` and ``worst_case``, or refuse with the same error: for
shipped models and for policy prices with odd decimals, any usage, TTL, tier, geo, fast mode, batch and
server tool uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from decimal import Decimal as D
from typing import Any, TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from claude_rbac.policy._costs import cost_total, worst_case_micro
from claude_rbac.policy.prices import (
    BillableUsage,
    CacheCreation,
    Cost,
    LongContext,
    ModelPrice,
    Rates,
    ServerToolUse,
    ToolPrice,
    cost,
    shipped_prices,
    with_overrides,
    worst_case,
)

T = TypeVar("T")
SHIPPED = shipped_prices()
MODELS = sorted(SHIPPED.entries)
GEOS = st.sampled_from([None, "global", "us", "eu"])
counts = st.integers(min_value=0, max_value=3_000_000)
few = st.integers(min_value=0, max_value=50)


def odd(places: int = 14, most: int = 10**7) -> st.SearchStrategy[D]:
    """A price with up to ``places`` decimals (a policy's hand-written rate, say ``0.1234567``)."""
    return st.builds(lambda n, p: D(n).scaleb(-p), st.integers(0, most), st.integers(0, places))


def multiplier() -> st.SearchStrategy[D]:
    return st.builds(lambda n, p: D(n).scaleb(-p), st.integers(1, 10**4), st.integers(0, 6))


def maybe(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.one_of(st.none(), strategy)


rates = st.builds(Rates, odd(), odd(), maybe(odd()), maybe(odd()), maybe(odd()))
policy_prices = st.builds(
    ModelPrice,
    pattern=st.just("claude-policy-*"),
    rates=rates,
    long_context=maybe(st.builds(LongContext, st.integers(0, 400_000), rates)),
    batch=maybe(multiplier()),
    fast=maybe(multiplier()),
    priority=maybe(multiplier()),
    inference_geo=st.lists(st.tuples(st.sampled_from(["us", "eu", "global"]), multiplier()), max_size=2).map(
        lambda items: tuple(dict(items).items())
    ),
)
prices = st.one_of(st.sampled_from(MODELS).map(SHIPPED.entries.__getitem__), policy_prices)
tool_tables = st.one_of(
    st.none(),
    st.just(SHIPPED.tools),
    st.dictionaries(
        st.sampled_from(["web_search", "web_fetch"]),
        odd(places=12, most=10**5),
        max_size=2,
    ).map(lambda given: {name: ToolPrice(name, per_use) for name, per_use in given.items()}),
)


@st.composite
def usages(draw: st.DrawFn) -> BillableUsage:
    split = draw(maybe(st.builds(CacheCreation, counts, counts)))
    written = 0 if split is None else split.ephemeral_5m_input_tokens + split.ephemeral_1h_input_tokens
    return BillableUsage(
        input_tokens=draw(counts),
        output_tokens=draw(counts),
        # mostly at least the split (an unsplit remainder), now and then less (a usage that cannot happen)
        cache_creation_input_tokens=draw(maybe(st.integers(max(0, written - 5), written + 3_000_000))),
        cache_creation=split,
        cache_read_input_tokens=draw(maybe(counts)),
        server_tool_use=draw(maybe(st.builds(ServerToolUse, few, few))),
        service_tier=draw(st.sampled_from([None, "standard", "priority", "batch"])),
        speed=draw(st.sampled_from([None, "standard", "fast"])),
        inference_geo=draw(GEOS),
        batch=draw(st.booleans()),
    )


def outcome(price: Callable[[], T]) -> T | tuple[type[BaseException], str]:
    try:
        return price()
    except Exception as exc:  # the two paths must refuse alike
        return type(exc), str(exc)


def assert_same_cost(exact: object, fast: object) -> None:
    if isinstance(exact, Cost):
        assert isinstance(fast, Cost)
        assert (fast.dollars, fast.micro_dollars) == (exact.dollars, exact.micro_dollars)
    else:
        assert fast == exact


@settings(max_examples=400, deadline=None)
@given(usages(), prices, tool_tables, st.sampled_from(["5m", "1h"]))
def test_settling_in_integers_is_the_exact_cost(
    usage: BillableUsage, price: ModelPrice, tools: Mapping[str, ToolPrice] | None, ttl: Any
) -> None:
    exact = outcome(lambda: cost(usage, price, tools=tools, unsplit_cache_ttl=ttl))
    assert_same_cost(exact, outcome(lambda: cost_total(usage, price, tools=tools, unsplit_cache_ttl=ttl)))
    assert_same_cost(exact, outcome(lambda: cost_total(usage, price, tools=tools, unsplit_cache_ttl=ttl)))  # memo


@settings(max_examples=400, deadline=None)
@given(
    prices,
    tool_tables,
    counts,
    counts,
    st.sampled_from([None, "5m", "1h"]),
    maybe(st.dictionaries(st.sampled_from(["web_search", "web_fetch", "code_execution"]), few, max_size=3)),
    st.booleans(),
    st.sampled_from(["standard", "fast"]),
    GEOS,
    st.sampled_from(["standard", "priority", "batch"]),
)
def test_reserving_in_integers_is_the_worst_case(
    price: ModelPrice,
    tools: Mapping[str, ToolPrice] | None,
    input_tokens: int,
    max_tokens: int,
    ttl: Any,
    uses: dict[str, int] | None,
    batch: bool,
    speed: Any,
    geo: str | None,
    tier: Any,
) -> None:
    asked: dict[str, Any] = {
        "input_tokens": input_tokens,
        "max_tokens": max_tokens,
        "cache_ttl": ttl,
        "tool_uses": uses,
        "batch": batch,
        "speed": speed,
        "inference_geo": geo,
        "service_tier": tier,
        "tools": tools,
    }
    exact = outcome(lambda: worst_case(price, **asked).micro_dollars)
    assert outcome(lambda: worst_case_micro(price, **asked)) == exact


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["input", "output", "cache_write_5m", "cache_write_1h", "cache_read", "batch"]),
        st.floats(min_value=1e-9, max_value=1e4, allow_nan=False, allow_infinity=False),
        min_size=1,
    ),
    st.floats(min_value=1e-6, max_value=10, allow_nan=False, allow_infinity=False),
    usages(),
)
def test_a_policys_float_prices_settle_alike_on_both_paths(
    given_rates: dict[str, float], geo: float, usage: BillableUsage
) -> None:
    table = with_overrides(SHIPPED, {"claude-haiku-4-5": {**given_rates, "inference_geo": {"us": geo}}})
    price = table.price_for("claude-haiku-4-5")
    assert price is not None
    exact = outcome(lambda: cost(usage, price, tools=table.tools))
    assert_same_cost(exact, outcome(lambda: cost_total(usage, price, tools=table.tools)))


def test_a_rate_with_more_decimals_than_pico_dollars_is_priced_at_a_finer_unit() -> None:
    price = dataclasses.replace(SHIPPED.entries["claude-haiku-4-5"], rates=Rates(D("0.123456789"), D(5)))
    usage = BillableUsage(input_tokens=7, output_tokens=1)
    priced = cost_total(usage, price)
    assert priced.dollars == D("0.123456789") * 7 / 10**6 + D(5) / 10**6 == cost(usage, price).dollars
    assert priced.micro_dollars == 6  # 0.000000864197523 + 0.000005, rounded up once
