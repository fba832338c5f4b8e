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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from decimal import ROUND_CEILING, Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow, localcontext
from typing import Literal, cast, get_args

from ._price_schema import shipped_prices
from ._prices import MissingPrice, ModelPrice, Rates, ToolPrice

__all__ = ["BillableUsage", "CacheCreation", "Cost", "ServerToolUse", "cost", "worst_case"]

Ttl = Literal["5m", "1h"]
ServiceTier = Literal["standard", "priority", "batch"]
Speed = Literal["standard", "fast"]

MILLION = Decimal(1_000_000)
_EXACT = Context(prec=60, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])


def _count(owner: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{owner}.{name} must be a token or request count (an int >= 0), got {value!r}")
    return value


def _get(data: object, name: str) -> object:
    return data.get(name) if isinstance(data, Mapping) else getattr(data, name, None)


def _optional_count(data: object, name: str) -> int | None:
    value = _get(data, name)
    return None if value is None else _count("usage", name, value)


@dataclass(frozen=True, slots=True)
class CacheCreation:
    """``usage.cache_creation``: the cache writes by TTL."""

    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0

    def __post_init__(self) -> None:
        for spec in fields(self):
            _count("cache_creation", spec.name, getattr(self, spec.name))


@dataclass(frozen=True, slots=True)
class ServerToolUse:
    """``usage.server_tool_use``: how many times each server tool ran (what it is billed by)."""

    web_search_requests: int = 0
    web_fetch_requests: int = 0

    def __post_init__(self) -> None:
        for spec in fields(self):
            _count("server_tool_use", spec.name, getattr(self, spec.name))

    def uses(self) -> dict[str, int]:
        """Uses by tool name (``web_search``), the names the price table's ``server_tools`` use."""
        return {spec.name.removesuffix("_requests"): getattr(self, spec.name) for spec in fields(self)}


@dataclass(frozen=True, slots=True)
class BillableUsage:
    """The ``usage`` of a response, field for field as ``anthropic.types.Usage`` has it, plus ``batch``.

    ``batch`` is a fact of the request the usage may not carry: the call went through the Message
    Batches API. ``service_tier="batch"`` in the usage means the same. Read a response's usage with
    :meth:`from_api`; fold a stream's later ``message_delta`` totals in with :meth:`updated`.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = None
    cache_creation: CacheCreation | None = None
    cache_read_input_tokens: int | None = None
    server_tool_use: ServerToolUse | None = None
    service_tier: ServiceTier | None = None
    speed: Speed | None = None
    inference_geo: str | None = None
    batch: bool = False

    def __post_init__(self) -> None:
        for name in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            value = getattr(self, name)
            if value is not None:
                _count("usage", name, value)
        if self.service_tier not in (None, *get_args(ServiceTier)):
            raise ValueError(f"usage.service_tier must be one of {get_args(ServiceTier)}, got {self.service_tier!r}")
        if self.speed not in (None, *get_args(Speed)):
            raise ValueError(f"usage.speed must be one of {get_args(Speed)}, got {self.speed!r}")

    @classmethod
    def from_api(cls, usage: object, *, batch: bool = False) -> BillableUsage:
        """From an SDK ``Usage`` / ``BetaUsage`` / ``MessageDeltaUsage`` or its JSON dict."""
        split, tools, geo = (_get(usage, name) for name in ("cache_creation", "server_tool_use", "inference_geo"))
        if geo is not None and not isinstance(geo, str):
            raise ValueError(f"usage.inference_geo must be a string, got {geo!r}")
        return cls(
            input_tokens=_optional_count(usage, "input_tokens") or 0,
            output_tokens=_optional_count(usage, "output_tokens") or 0,
            cache_creation_input_tokens=_optional_count(usage, "cache_creation_input_tokens"),
            cache_creation=None if split is None else CacheCreation(**_counts(split, CacheCreation)),
            cache_read_input_tokens=_optional_count(usage, "cache_read_input_tokens"),
            server_tool_use=None if tools is None else ServerToolUse(**_counts(tools, ServerToolUse)),
            service_tier=cast("ServiceTier | None", _get(usage, "service_tier")),  # checked in __post_init__
            speed=cast("Speed | None", _get(usage, "speed")),
            inference_geo=geo,
            batch=batch,
        )

    def updated(self, delta: object) -> BillableUsage:
        """This usage with a later ``message_delta``'s totals, which are cumulative: each count the
        delta gives replaces ours; what it leaves out (the TTL split, the tier, the geo) stays."""

        def later(name: str, ours: int | None) -> int | None:
            theirs = _optional_count(delta, name)
            return ours if theirs is None else theirs

        tools = _get(delta, "server_tool_use")
        return replace(
            self,
            input_tokens=later("input_tokens", self.input_tokens) or 0,
            output_tokens=later("output_tokens", self.output_tokens) or 0,
            cache_creation_input_tokens=later("cache_creation_input_tokens", self.cache_creation_input_tokens),
            cache_read_input_tokens=later("cache_read_input_tokens", self.cache_read_input_tokens),
            server_tool_use=self.server_tool_use if tools is None else ServerToolUse(**_counts(tools, ServerToolUse)),
        )


def _counts(data: object, shape: type[CacheCreation] | type[ServerToolUse]) -> dict[str, int]:
    return {spec.name: _optional_count(data, spec.name) or 0 for spec in fields(shape)}


@dataclass(frozen=True, slots=True)
class Cost:
    """A priced call: the exact dollars, the micro-dollars stored (rounded up once), and the parts."""

    dollars: Decimal
    micro_dollars: int
    parts: tuple[tuple[str, Decimal], ...] = ()

    @classmethod
    def of(cls, parts: list[tuple[str, Decimal]]) -> Cost:
        with localcontext(_EXACT):
            total = sum((amount for _, amount in parts), Decimal(0))
            micro = int((total * MILLION).to_integral_value(rounding=ROUND_CEILING))
        return cls(total, micro, tuple(parts))


def _rate(price: ModelPrice, rates: Rates, kind: str) -> Decimal:
    rate: Decimal | None = getattr(rates, kind)
    if rate is None:
        raise MissingPrice(f"{price.pattern} has no published {kind} price")
    return rate


def _multiplier(price: ModelPrice, *, batch: bool, priority: bool, fast: bool, geo: str | None) -> Decimal:
    if batch and (fast or priority):
        raise ValueError("a batch call runs neither in fast mode nor on Priority Tier")
    factors = {
        "the Batch API": price.batch if batch else Decimal(1),
        "Priority Tier": price.priority if priority else Decimal(1),
        "fast mode": price.fast if fast else Decimal(1),
        f"inference_geo={geo!r}": price.geo_multiplier(geo),
    }
    multiplier = Decimal(1)
    for fact, factor in factors.items():
        if factor is None:
            raise MissingPrice(f"{price.pattern} has no published price for {fact}")
        with localcontext(_EXACT):
            multiplier *= factor
    return multiplier


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
    multiplier = _multiplier(price, batch=batch, priority=priority, fast=fast, geo=geo)
    tool_prices = shipped_prices().tools if tools is None else tools
    parts: list[tuple[str, Decimal]] = []
    with localcontext(_EXACT):
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
    split = usage.cache_creation or CacheCreation()
    written = split.ephemeral_5m_input_tokens + split.ephemeral_1h_input_tokens
    total = written if usage.cache_creation_input_tokens is None else usage.cache_creation_input_tokens
    if written > total:
        raise ValueError(f"usage.cache_creation splits {written} tokens, more than cache_creation_input_tokens={total}")
    unsplit = total - written
    tokens = {
        "input": usage.input_tokens,
        "cache_write_5m": split.ephemeral_5m_input_tokens + (unsplit if unsplit_cache_ttl == "5m" else 0),
        "cache_write_1h": split.ephemeral_1h_input_tokens + (unsplit if unsplit_cache_ttl == "1h" else 0),
        "cache_read": usage.cache_read_input_tokens or 0,
        "output": usage.output_tokens,
    }
    tool_uses = usage.server_tool_use.uses() if usage.server_tool_use is not None else {}
    return _priced(
        price,
        tokens,
        tool_uses,
        tools,
        batch=usage.batch or usage.service_tier == "batch",
        priority=usage.service_tier == "priority",
        fast=usage.speed == "fast",
        geo=usage.inference_geo,
    )


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
    _count("worst_case", "input_tokens", input_tokens)
    _count("worst_case", "max_tokens", max_tokens)
    uses = {name: _count("worst_case.tool_uses", name, n) for name, n in (tool_uses or {}).items()}
    geo = price.dearest_geo() if inference_geo is None else inference_geo
    kinds = ["input"] if cache_ttl is None else ["input", f"cache_write_{cache_ttl}"]
    candidates = [
        _priced(
            price,
            {kind: input_tokens, "output": max_tokens},
            uses,
            tools,
            batch=batch or service_tier == "batch",
            priority=service_tier == "priority",
            fast=speed == "fast",
            geo=geo,
        )
        for kind in kinds
    ]
    return max(candidates, key=lambda candidate: candidate.dollars)
