"""A settled call's exact cost (``exact_cost``, priced in integers) against the Decimal pricing of its parts."""

from __future__ import annotations

from decimal import ROUND_CEILING
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from claude_rbac.enforcement._spend import exact_cost
from claude_rbac.enforcement._usage import Usage
from claude_rbac.policy.prices import BillableUsage, CacheCreation, Cost, ServerToolUse, cost, shipped_prices

PRICES = shipped_prices()
MODELS = ["claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-7"]
counts = st.integers(0, 2_000_000)
usages = st.builds(
    BillableUsage,
    input_tokens=counts,
    output_tokens=counts,
    cache_creation=st.builds(CacheCreation, counts, counts),
    cache_read_input_tokens=counts,
    server_tool_use=st.builds(ServerToolUse, st.integers(0, 20), st.integers(0, 20)),
    inference_geo=st.sampled_from([None, "global"]),
    batch=st.booleans(),
)


def decimal_cost(model: str, usage: BillableUsage, ttl: str) -> Cost:
    price = PRICES.price_for(model)
    assert price is not None
    return cost(usage, price, tools=PRICES.tools, unsplit_cache_ttl="1h" if ttl == "1h" else "5m")


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(MODELS),
    usages,
    st.lists(st.tuples(st.sampled_from(MODELS), usages), max_size=3),
    st.sampled_from([None, "5m", "1h"]),
)
def test_a_call_and_its_advisors_settle_at_their_exact_sum_rounded_up_once(
    model: str, usage: BillableUsage, advisors: list[tuple[str, BillableUsage]], ttl: str | None
) -> None:
    priced = exact_cost(PRICES, Usage(billable=usage, model=model, advisors=tuple(advisors)), None, ttl)
    parts = [decimal_cost(model, usage, str(ttl)), *(decimal_cost(m, u, str(ttl)) for m, u in advisors)]
    exact = sum((part.dollars for part in parts), D(0))
    assert priced is not None
    assert priced.dollars == exact
    assert priced.micro_dollars == int(
        (exact * 10**6).to_integral_value(rounding=ROUND_CEILING)
    )  # rounded up once, over the whole call
    assert priced.micro_dollars <= sum(part.micro_dollars for part in parts)


def test_a_usage_that_cannot_be_priced_keeps_the_reservation() -> None:
    usage = BillableUsage(input_tokens=10, service_tier="priority")
    assert exact_cost(PRICES, Usage(billable=usage, model="claude-haiku-4-5"), None, None) is None
    assert exact_cost(PRICES, Usage(billable=BillableUsage(1), model="claude-nonesuch"), None, None) is None
    helped = Usage(
        billable=BillableUsage(1), model="claude-haiku-4-5", advisors=(("claude-nonesuch", BillableUsage(1)),)
    )
    assert exact_cost(PRICES, helped, None, None) is None
