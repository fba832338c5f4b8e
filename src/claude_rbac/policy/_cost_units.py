"""The exact arithmetic of prices: the 60-digit context that refuses to round, a call's multiplier, and the
integer path (each rate x multiplier once as whole ``10**-scale`` dollars per token; see ``_costs.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow, localcontext
from typing import Final, TypedDict, cast

from ._price_schema import shipped_prices
from ._prices import MissingPrice, ModelPrice, Rates, ToolPrice

__all__ = [
    "EXACT",
    "MAX_UNITS",
    "PICO",
    "ExactRates",
    "Facts",
    "exact_rates",
    "micro_of",
    "multiplier_of",
    "per_token_units",
    "tool_units",
    "units_of",
]

EXACT = Context(prec=60, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])
"""Decimal arithmetic that raises rather than round: a price is exact or refused."""


def multiplier_of(price: ModelPrice, *, batch: bool, priority: bool, fast: bool, geo: str | None) -> Decimal:
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
        with localcontext(EXACT):
            multiplier *= factor
    return multiplier


PICO: Final = 12
"""The unit of the integer path: 10**-12 dollars (a millionth of a micro-dollar), unless a rate needs finer."""
_MAX_SCALE: Final = 30
"""Units finer than 10**-30 dollars, or sums of 10**45 units and more, are left to the Decimal path (which
may refuse them as inexact at its 60 digits): there the two paths agree by being one."""
MAX_UNITS: Final = 10**45
_RATE_KINDS: Final = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
_MEMO_SIZE: Final = 4096


class Facts(TypedDict):
    batch: bool
    priority: bool
    fast: bool
    geo: str | None


@dataclass(frozen=True, slots=True)
class ExactRates:
    """Every rate of one (price, rates, tools, multipliers) as an exact integer of ``10**-scale`` dollars."""

    scale: int
    per_token: Mapping[str, int | None]
    per_use: Mapping[str, int]


_Key = tuple[int, int, int, bool, bool, bool, "str | None"]
_memo: dict[_Key, tuple[ModelPrice, Rates, Mapping[str, ToolPrice], ExactRates | None]] = {}
"""Keyed by the identities of the price, its rates and the tools: each entry holds all three, so no id it is
keyed by can be reused by another object while it lives; a hit checks them anyway."""


def exact_rates(
    price: ModelPrice,
    rates: Rates,
    tools: Mapping[str, ToolPrice],
    *,
    batch: bool,
    priority: bool,
    fast: bool,
    geo: str | None,
) -> ExactRates | None:
    key = (id(price), id(rates), id(tools), batch, priority, fast, geo)
    found = _memo.get(key)
    if found is not None and found[0] is price and found[1] is rates and found[2] is tools:
        return found[3]
    multiplier = multiplier_of(price, batch=batch, priority=priority, fast=fast, geo=geo)  # raises as _priced does
    compiled = _compile(rates, tools, multiplier)
    if len(_memo) >= _MEMO_SIZE:
        _memo.clear()
    _memo[key] = (price, rates, tools, compiled)
    return compiled


def _compile(rates: Rates, tools: Mapping[str, ToolPrice], multiplier: Decimal) -> ExactRates | None:
    try:
        with localcontext(EXACT):
            per_token = {kind: _per_token(getattr(rates, kind), multiplier) for kind in _RATE_KINDS}
            per_use = {name: tool.per_use for name, tool in tools.items()}
            exponents = [amount.as_tuple().exponent for amount in (*per_token.values(), *per_use.values()) if amount]
            scale = max([PICO, *(-cast(int, exponent) for exponent in exponents)])
            if scale > _MAX_SCALE:
                return None
            return ExactRates(
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


def units_of(
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
    exact = exact_rates(
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
            units += count * per_token_units(price, exact, kind)
    units += tool_units(exact, tool_uses)
    return (units, exact.scale) if units < MAX_UNITS else None


def per_token_units(price: ModelPrice, exact: ExactRates, kind: str) -> int:
    rate = exact.per_token[kind]
    if rate is None:
        raise MissingPrice(f"{price.pattern} has no published {kind} price")
    return rate


def tool_units(exact: ExactRates, tool_uses: Mapping[str, int]) -> int:
    units = 0
    for name, uses in tool_uses.items():
        if uses:
            each = exact.per_use.get(name)
            if each is None:
                raise MissingPrice(f"the server tool {name!r} has no published price per use")
            units += uses * each
    return units


def micro_of(units: int, scale: int) -> int:
    """Whole micro-dollars, rounded up once."""
    per_micro: int = 10 ** (scale - 6)
    return -(-units // per_micro)
