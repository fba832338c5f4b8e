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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from decimal import ROUND_CEILING, Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow, localcontext
from typing import Final, Literal, TypedDict, cast, get_args

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

Ttl = Literal["5m", "1h"]
ServiceTier = Literal["standard", "priority", "batch"]
Speed = Literal["standard", "fast"]

_TIERS: Final = (None, *get_args(ServiceTier))
_SPEEDS: Final = (None, *get_args(Speed))
MILLION = Decimal(1_000_000)
_EXACT = Context(prec=60, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])


def _count(owner: str, name: str, value: object) -> int:
    if type(value) is int and value >= 0:  # the common case, checked first (bool is not exactly int)
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{owner}.{name} must be a token or request count (an int >= 0), got {value!r}")
    return value


def _get(data: object, name: str) -> object:
    return data.get(name) if isinstance(data, Mapping) else getattr(data, name, None)


def _getter(data: object) -> Callable[[str], object]:
    """``_get`` bound to ``data``: whether it is a mapping is asked once, not per field."""
    if isinstance(data, Mapping):
        return cast("Callable[[str], object]", data.get)
    return lambda name: getattr(data, name, None)


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
        return {"web_search": self.web_search_requests, "web_fetch": self.web_fetch_requests}


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
        if self.service_tier not in _TIERS:
            raise ValueError(f"usage.service_tier must be one of {get_args(ServiceTier)}, got {self.service_tier!r}")
        if self.speed not in _SPEEDS:
            raise ValueError(f"usage.speed must be one of {get_args(Speed)}, got {self.speed!r}")

    @classmethod
    def from_api(cls, usage: object, *, batch: bool = False) -> BillableUsage:
        """From an SDK ``Usage`` / ``BetaUsage`` / ``MessageDeltaUsage`` or its JSON dict."""
        get = _getter(usage)
        split, tools, geo = get("cache_creation"), get("server_tool_use"), get("inference_geo")
        if geo is not None and not isinstance(geo, str):
            raise ValueError(f"usage.inference_geo must be a string, got {geo!r}")

        def count(name: str) -> int | None:
            value = get(name)
            return None if value is None else _count("usage", name, value)

        return cls(
            input_tokens=count("input_tokens") or 0,
            output_tokens=count("output_tokens") or 0,
            cache_creation_input_tokens=count("cache_creation_input_tokens"),
            cache_creation=None if split is None else CacheCreation(**_counts(split, CacheCreation)),
            cache_read_input_tokens=count("cache_read_input_tokens"),
            server_tool_use=None if tools is None else ServerToolUse(**_counts(tools, ServerToolUse)),
            service_tier=cast("ServiceTier | None", get("service_tier")),  # checked in __post_init__
            speed=cast("Speed | None", get("speed")),
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

    @classmethod
    def of_units(cls, units: int, scale: int) -> Cost:
        """``units * 10**-scale`` dollars, exactly (the integer path's answer), with no parts."""
        return cls(Decimal(f"{units}E-{scale}"), _micro(units, scale))


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
    units = _units(price, tokens, tool_uses, tools, **facts)
    if units is None:
        return replace(_priced(price, tokens, tool_uses, tools, **facts), parts=())
    return Cost.of_units(*units)


def _usage_terms(usage: BillableUsage, unsplit_cache_ttl: Ttl) -> tuple[dict[str, int], dict[str, int], _Facts]:
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
    facts: _Facts = {
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
    exact = _exact(price, price.rates_for(input_tokens), shipped_prices().tools if tools is None else tools, **facts)
    if exact is not None:
        # The Decimal path's order: the input candidate's parts (input, output, tools), then the cache write's.
        prompt = _per_token_units(price, exact, "input") * input_tokens if input_tokens else 0
        rest = (_per_token_units(price, exact, "output") * max_tokens if max_tokens else 0) + _tool_units(exact, uses)
        if cache_ttl is not None and input_tokens:
            prompt = max(prompt, _per_token_units(price, exact, f"cache_write_{cache_ttl}") * input_tokens)
        if prompt + rest < _MAX_UNITS:
            return _micro(prompt + rest, exact.scale)
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
) -> tuple[dict[str, int], _Facts]:
    _count("worst_case", "input_tokens", input_tokens)
    _count("worst_case", "max_tokens", max_tokens)
    uses = {name: _count("worst_case.tool_uses", name, n) for name, n in tool_uses.items()} if tool_uses else {}
    facts: _Facts = {
        "batch": batch or service_tier == "batch",
        "priority": service_tier == "priority",
        "fast": speed == "fast",
        "geo": price.dearest_geo() if inference_geo is None else inference_geo,
    }
    return uses, facts


# The integer path.

PICO: Final = 12
"""The unit of the integer path: 10**-12 dollars (a millionth of a micro-dollar), unless a rate needs finer."""
_MAX_SCALE: Final = 30
"""Units finer than 10**-30 dollars, or sums of 10**45 units and more, are left to the Decimal path (which
may refuse them as inexact at its 60 digits): there the two paths agree by being one."""
_MAX_UNITS: Final = 10**45
_RATE_KINDS: Final = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
_MEMO_SIZE: Final = 4096


class _Facts(TypedDict):
    batch: bool
    priority: bool
    fast: bool
    geo: str | None


@dataclass(frozen=True, slots=True)
class _Exact:
    """Every rate of one (price, rates, tools, multipliers) as an exact integer of ``10**-scale`` dollars."""

    scale: int
    per_token: Mapping[str, int | None]
    per_use: Mapping[str, int]


_Key = tuple[int, int, int, bool, bool, bool, "str | None"]
_memo: dict[_Key, tuple[ModelPrice, Rates, Mapping[str, ToolPrice], _Exact | None]] = {}
"""Keyed by the identities of the price, its rates and the tools: each entry holds all three, so no id it is
keyed by can be reused by another object while it lives; a hit checks them anyway."""


def _exact(
    price: ModelPrice,
    rates: Rates,
    tools: Mapping[str, ToolPrice],
    *,
    batch: bool,
    priority: bool,
    fast: bool,
    geo: str | None,
) -> _Exact | None:
    key = (id(price), id(rates), id(tools), batch, priority, fast, geo)
    found = _memo.get(key)
    if found is not None and found[0] is price and found[1] is rates and found[2] is tools:
        return found[3]
    multiplier = _multiplier(price, batch=batch, priority=priority, fast=fast, geo=geo)  # raises as _priced does
    compiled = _compile(rates, tools, multiplier)
    if len(_memo) >= _MEMO_SIZE:
        _memo.clear()
    _memo[key] = (price, rates, tools, compiled)
    return compiled


def _compile(rates: Rates, tools: Mapping[str, ToolPrice], multiplier: Decimal) -> _Exact | None:
    try:
        with localcontext(_EXACT):
            per_token = {kind: _per_token(getattr(rates, kind), multiplier) for kind in _RATE_KINDS}
            per_use = {name: tool.per_use for name, tool in tools.items()}
            exponents = [amount.as_tuple().exponent for amount in (*per_token.values(), *per_use.values()) if amount]
            scale = max([PICO, *(-cast(int, exponent) for exponent in exponents)])
            if scale > _MAX_SCALE:
                return None
            return _Exact(
                scale,
                {kind: None if rate is None else _integral(rate, scale) for kind, rate in per_token.items()},
                {name: _integral(each, scale) for name, each in per_use.items()},
            )
    except (Inexact, Overflow, InvalidOperation):
        return None


def _per_token(rate: Decimal | None, multiplier: Decimal) -> Decimal | None:
    """Dollars per token (``rate`` is per million), exactly; raises ``Inexact`` rather than round."""
    return None if rate is None else (rate * multiplier).scaleb(-6)


def _integral(dollars: Decimal, scale: int) -> int:
    scaled = dollars.scaleb(scale)
    if scaled != scaled.to_integral_value():  # pragma: no cover - the scale is chosen so it always is
        raise Inexact
    return int(scaled)


def _units(
    price: ModelPrice,
    tokens: Mapping[str, int],
    tool_uses: Mapping[str, int],
    tools: Mapping[str, ToolPrice] | None,
    *,
    batch: bool,
    priority: bool,
    fast: bool,
    geo: str | None,
) -> tuple[int, int] | None:
    """The exact cost of a usage's tokens (all five kinds) as ``(units, scale)``: ``units * 10**-scale``
    dollars; ``None``: ask the Decimal path."""
    prompt = tokens["input"] + tokens["cache_write_5m"] + tokens["cache_write_1h"] + tokens["cache_read"]
    exact = _exact(
        price,
        price.rates_for(prompt),
        shipped_prices().tools if tools is None else tools,
        batch=batch,
        priority=priority,
        fast=fast,
        geo=geo,
    )
    if exact is None:
        return None
    units = 0
    for kind, count in tokens.items():
        if count:
            units += count * _per_token_units(price, exact, kind)
    units += _tool_units(exact, tool_uses)
    return (units, exact.scale) if units < _MAX_UNITS else None


def _per_token_units(price: ModelPrice, exact: _Exact, kind: str) -> int:
    rate = exact.per_token[kind]
    if rate is None:
        raise MissingPrice(f"{price.pattern} has no published {kind} price")
    return rate


def _tool_units(exact: _Exact, tool_uses: Mapping[str, int]) -> int:
    units = 0
    for name, uses in tool_uses.items():
        if uses:
            each = exact.per_use.get(name)
            if each is None:
                raise MissingPrice(f"the server tool {name!r} has no published price per use")
            units += uses * each
    return units


def _micro(units: int, scale: int) -> int:
    """Whole micro-dollars, rounded up once."""
    per_micro: int = 10 ** (scale - 6)
    return -(-units // per_micro)
