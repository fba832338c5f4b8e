"""The reservation bounds the settlement: for any usage within what the request allows, cost <= worst case.

This is what makes the cross-process bound zero: a call never settles above what it reserved unless its usage
leaves the request's bounds (output above max_tokens, a prompt above the estimate, more tool uses than max_uses).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from claude_rbac.policy import Policy
from claude_rbac.policy._reserve import reserve
from claude_rbac.policy.prices import BillableUsage, CacheCreation, MissingPrice, ServerToolUse, cost

PRICES = Policy.default().prices
MODELS = ["claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-7", "claude-opus-4-8", "claude-haiku-5-5"]


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, dict[str, Any], int, BillableUsage]:
    model = draw(st.sampled_from(MODELS))
    estimate = draw(st.integers(0, 400_000))
    max_tokens = draw(st.integers(1, 128_000))
    ttl = draw(st.sampled_from([None, "5m", "1h"]))
    geo = draw(st.sampled_from([None, "global", "us"]))
    fast = model == "claude-opus-4-8" and draw(st.booleans())
    searches = draw(st.integers(0, 5))
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": []}
    if ttl is not None:
        body["system"] = [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": ttl}}]
    if geo is not None:
        body["inference_geo"] = geo
    if fast:
        body["speed"] = "fast"
    body["tools"] = [{"type": "web_search_20250305", "name": "web_search", "max_uses": searches}]
    # A usage within the request: its prompt parts sum to at most the estimate, cache writes only at the TTL
    # the request named, output at most max_tokens, searches at most max_uses.
    prompt = draw(st.integers(0, estimate))
    read = draw(st.integers(0, prompt)) if ttl is not None else 0
    written = draw(st.integers(0, prompt - read)) if ttl is not None else 0
    usage = BillableUsage(
        input_tokens=prompt - read - written,
        output_tokens=draw(st.integers(0, max_tokens)),
        cache_creation_input_tokens=written,
        cache_creation=CacheCreation(
            ephemeral_5m_input_tokens=written if ttl == "5m" else 0,
            ephemeral_1h_input_tokens=written if ttl == "1h" else 0,
        ),
        cache_read_input_tokens=read,
        server_tool_use=ServerToolUse(web_search_requests=draw(st.integers(0, searches))),
        speed="fast" if fast else "standard",
        inference_geo=geo or draw(st.sampled_from(["global", "us"])) if model != "claude-haiku-4-5" else "global",
    )
    return model, body, estimate, usage


@settings(max_examples=400, deadline=None)
@given(calls())
def test_the_settled_cost_never_passes_the_reservation(call: tuple[str, dict[str, Any], int, BillableUsage]) -> None:
    model, body, estimate, usage = call
    try:
        reserved = reserve(body, PRICES, input_tokens=estimate, runs=[(model, body["max_tokens"])])
    except MissingPrice:  # a rate the table lacks (a long-context cache rate): the call is refused, not priced
        return
    price = PRICES.price_for(model)
    assert price is not None
    settled = cost(usage, price, tools=PRICES.tools)
    assert settled.micro_dollars <= reserved
