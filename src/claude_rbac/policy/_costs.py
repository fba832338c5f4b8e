"""What a call to Claude costs, exactly, and the most it can cost, reserved before it is sent.

Rounding: each part is ``tokens x rate x multipliers / 10**6`` (and each server tool
``uses x price``), computed in ``Decimal`` with no rounding anywhere (a step that would round raises
instead); the parts are summed exactly into :attr:`Cost.dollars`; that sum is rounded up once, to
whole micro-dollars, into :attr:`Cost.micro_dollars`. So the stored integer is never below the true
cost and less than one micro-dollar ($0.000001) above it.

Cache writes: when the usage carries ``cache_creation`` (the 5-minute / 1-hour split), each part is
priced at its TTL's rate. Tokens of ``cache_creation_input_tokens`` the split does not account for
(an older response, or a later ``message_delta`` whose total grew) are priced at ``unsplit_cache_ttl``,
``"5m"`` by default because Anthropic documents the 5-minute TTL as the default (the SDK's
``CacheControlEphemeralParam.ttl``: "Defaults to `5m`"). A caller that knows the request asked for
``"1h"`` passes that.

Multipliers (batch, Priority Tier, fast mode, ``inference_geo``) apply to every token part, cache
parts included; server tools are priced per use and take none of them (the pricing page applies the
batch discount and the data-residency multiplier to tokens). A price the table lacks raises
:class:`~claude_rbac.prices.MissingPrice`: a call is priced exactly or not at all.

Two paths, one answer. :func:`cost` and :func:`worst_case` price in ``Decimal`` and keep every part (for
reports and ``explain``). The per-call paths, :func:`cost_total` (settling from usage) and
:func:`worst_case_micro` (reserving at admission), price in integers: for each (price, rates, tools, batch,
Priority Tier, fast mode, geo) every rate x multiplier is turned once into an exact integer number of
``10**-scale`` dollars per token (pico-dollars, ``scale=12``, unless a rate has more decimals: then the
scale grows to fit it, so the integer is always exact), and a call is an integer sum of tokens x rate,
rounded up to micro-dollars once by ceiling division. Where the integers would be absurdly large (a rate
with dozens of decimals) the ``Decimal`` path answers instead, so both always agree, error for error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, Decimal, localcontext

from ._billable import BillableUsage, CacheCreation, ServerToolUse, ServiceTier, Speed, Ttl, count_of
from ._cost_units import (
    EXACT,
    MAX_UNITS,
    Facts,
    exact_rates,
    micro_of,
    multiplier_of,
    per_token_units,
    tool_units,
    units_of,
)
from ._price_schema import shipped_prices
from ._prices import MissingPrice, ModelPrice, Rates, ToolPrice

__all__ = [
    "BillableUsage",
    "CacheCreation",
    "Cost",
    "ServerToolUse",
    "cost",
    "cost_total",
    "worst_case",
    "worst_case_micro",
]

MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Cost:
    """A priced call: the exact dollars, the micro-dollars stored (rounded up once), and the parts."""

    dollars: Decimal
    micro_dollars: int
    parts: tuple[tuple[str, Decimal], ...] = ()

    @classmethod
    def of(cls, parts: list[tuple[str, Decimal]]) -> Cost:
        with localcontext(EXACT):
            total = sum((amount for _, amount in parts), Decimal(0))
            micro = int((total * MILLION).to_integral_value(rounding=ROUND_CEILING))
        return cls(total, micro, tuple(parts))

    @classmethod
    def of_units(cls, units: int, scale: int) -> Cost:
        """``units * 10**-scale`` dollars, exactly (the integer path's answer), with no parts."""
        return cls(Decimal(f"{units}E-{scale}"), micro_of(units, scale))


def _rate(price: ModelPrice, rates: Rates, kind: str) -> Decimal:
    rate: Decimal | None = getattr(rates, kind)
    if rate is None:
        raise MissingPrice(f"{price.pattern} has no published {kind} price")
    return rate


def _priced(
    price: ModelPrice,
    tokens: Mapping[str, int],
    tool_uses: Mapping[str, int],
    tools: Mapping[str, ToolPrice] | None,
    *,
    batch: bool,
    priority: bool,
    fast: bool,
    geo: str | None,
) -> Cost:
    prompt = sum(count for kind, count in tokens.items() if kind != "output")
    rates = price.rates_for(prompt)
    multiplier = multiplier_of(price, batch=batch, priority=priority, fast=fast, geo=geo)
    tool_prices = shipped_prices().tools if tools is None else tools
    parts: list[tuple[str, Decimal]] = []
    with localcontext(EXACT):
        for kind, count in tokens.items():
            if count:
                parts.append((kind, count * _rate(price, rates, kind) * multiplier / MILLION))
        for name, uses in tool_uses.items():
            if uses:
                tool = tool_prices.get(name)
                if tool is None:
                    raise MissingPrice(f"the server tool {name!r} has no published price per use")
                parts.append((name, uses * tool.per_use))
    return Cost.of(parts)


def cost(
    usage: BillableUsage,
    price: ModelPrice,
    *,
    tools: Mapping[str, ToolPrice] | None = None,
    unsplit_cache_ttl: Ttl = "5m",
) -> Cost:
    """What ``usage`` costs at ``price`` (server tools at ``tools``, the shipped ones by default).

    Raises :class:`~claude_rbac.prices.MissingPrice` when the usage needs a rate or multiplier the
    price lacks (a Priority Tier usage, until a policy sets ``priority``: no list price is published)
    and ``ValueError`` for a usage that cannot happen (a batch call in fast mode, a TTL split larger
    than its total).
    """
    tokens, tool_uses, facts = _usage_terms(usage, unsplit_cache_ttl)
    return _priced(price, tokens, tool_uses, tools, **facts)


def cost_total(
    usage: BillableUsage,
    price: ModelPrice,
    *,
    tools: Mapping[str, ToolPrice] | None = None,
    unsplit_cache_ttl: Ttl = "5m",
) -> Cost:
    """:func:`cost`'s ``dollars`` and ``micro_dollars``, priced in integers, without the parts (the settling path)."""
    tokens, tool_uses, facts = _usage_terms(usage, unsplit_cache_ttl)
    units = units_of(price, tokens, tool_uses, tools, **facts)
    if units is None:
        return replace(_priced(price, tokens, tool_uses, tools, **facts), parts=())
    return Cost.of_units(*units)


def _usage_terms(usage: BillableUsage, unsplit_cache_ttl: Ttl) -> tuple[dict[str, int], dict[str, int], Facts]:
    split = usage.cache_creation
    five, hour = (0, 0) if split is None else (split.ephemeral_5m_input_tokens, split.ephemeral_1h_input_tokens)
    written = five + hour
    total = written if usage.cache_creation_input_tokens is None else usage.cache_creation_input_tokens
    if written > total:
        raise ValueError(f"usage.cache_creation splits {written} tokens, more than cache_creation_input_tokens={total}")
    unsplit = total - written
    tokens = {
        "input": usage.input_tokens,
        "cache_write_5m": five + (unsplit if unsplit_cache_ttl == "5m" else 0),
        "cache_write_1h": hour + (unsplit if unsplit_cache_ttl == "1h" else 0),
        "cache_read": usage.cache_read_input_tokens or 0,
        "output": usage.output_tokens,
    }
    tool_uses = usage.server_tool_use.uses() if usage.server_tool_use is not None else {}
    tier = usage.service_tier
    facts: Facts = {
        "batch": usage.batch or tier == "batch",
        "priority": tier == "priority",
        "fast": usage.speed == "fast",
        "geo": usage.inference_geo,
    }
    return tokens, tool_uses, facts


def worst_case(
    price: ModelPrice,
    *,
    input_tokens: int,
    max_tokens: int,
    cache_ttl: Ttl | None = None,
    tool_uses: Mapping[str, int] | None = None,
    batch: bool = False,
    speed: Speed = "standard",
    inference_geo: str | None = None,
    service_tier: ServiceTier = "standard",
    tools: Mapping[str, ToolPrice] | None = None,
) -> Cost:
    """The most a call can cost, to reserve before it is sent.

    ``input_tokens`` is the prompt estimate (input, cache writes and reads together, as
    ``count_tokens`` gives it), priced as if every token were written to the cache at ``cache_ttl``,
    the dearest TTL among the request's ``cache_control`` breakpoints (``None``: it has none), or as
    plain input where that is dearer; ``max_tokens`` at the output rate; each granted server tool's
    ``max_uses`` (``tool_uses``, by tool name) at its price per use. ``inference_geo=None`` (the
    workspace default applies) is reserved at the dearest geo the model has. Server tools that feed
    results back into the prompt can add input tokens no estimate saw: settle with :func:`cost`.
    """
    uses, facts = _worst_case_facts(
        price, input_tokens, max_tokens, tool_uses, batch, speed, inference_geo, service_tier
    )
    kinds = ["input"] if cache_ttl is None else ["input", f"cache_write_{cache_ttl}"]
    candidates = [_priced(price, {kind: input_tokens, "output": max_tokens}, uses, tools, **facts) for kind in kinds]
    return max(candidates, key=lambda candidate: candidate.dollars)


def worst_case_micro(
    price: ModelPrice,
    *,
    input_tokens: int,
    max_tokens: int,
    cache_ttl: Ttl | None = None,
    tool_uses: Mapping[str, int] | None = None,
    batch: bool = False,
    speed: Speed = "standard",
    inference_geo: str | None = None,
    service_tier: ServiceTier = "standard",
    tools: Mapping[str, ToolPrice] | None = None,
) -> int:
    """:func:`worst_case`'s ``micro_dollars``, priced in integers (the reserving path)."""
    uses, facts = _worst_case_facts(
        price, input_tokens, max_tokens, tool_uses, batch, speed, inference_geo, service_tier
    )
    exact = exact_rates(
        price, price.rates_for(input_tokens), shipped_prices().tools if tools is None else tools, **facts
    )
    if exact is not None:
        # The Decimal path's order: the input candidate's parts (input, output, tools), then the cache write's.
        prompt = per_token_units(price, exact, "input") * input_tokens if input_tokens else 0
        rest = (per_token_units(price, exact, "output") * max_tokens if max_tokens else 0) + tool_units(exact, uses)
        if cache_ttl is not None and input_tokens:
            prompt = max(prompt, per_token_units(price, exact, f"cache_write_{cache_ttl}") * input_tokens)
        if prompt + rest < MAX_UNITS:
            return micro_of(prompt + rest, exact.scale)
    return worst_case(
        price,
        input_tokens=input_tokens,
        max_tokens=max_tokens,
        cache_ttl=cache_ttl,
        tool_uses=tool_uses,
        batch=batch,
        speed=speed,
        inference_geo=inference_geo,
        service_tier=service_tier,
        tools=tools,
    ).micro_dollars


def _worst_case_facts(
    price: ModelPrice,
    input_tokens: int,
    max_tokens: int,
    tool_uses: Mapping[str, int] | None,
    batch: bool,
    speed: Speed,
    inference_geo: str | None,
    service_tier: ServiceTier,
) -> tuple[dict[str, int], Facts]:
    count_of("worst_case", "input_tokens", input_tokens)
    count_of("worst_case", "max_tokens", max_tokens)
    uses = {name: count_of("worst_case.tool_uses", name, n) for name, n in tool_uses.items()} if tool_uses else {}
    facts: Facts = {
        "batch": batch or service_tier == "batch",
        "priority": service_tier == "priority",
        "fast": speed == "fast",
        "geo": price.dearest_geo() if inference_geo is None else inference_geo,
    }
    return uses, facts


# The integer path.
