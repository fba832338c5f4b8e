"""Claude's prices as data, and exact costs from usage (see ``docs/policy.md``, "Prices").

The table ships as ``prices.toml`` beside this module, each row with its public source and the date it
was taken; a policy's ``[prices."pattern"]`` overrides or adds rows. Costs are exact ``Decimal`` sums,
rounded up once per call to whole micro-dollars. A model with no price has none: never a zero.
"""

from ._costs import BillableUsage, CacheCreation, Cost, ServerToolUse, cost, worst_case
from ._price_schema import (
    overridden,
    parse_price_table,
    price_for,
    shipped_prices,
    validate_price_overrides,
    with_overrides,
)
from ._prices import LongContext, MissingPrice, ModelPrice, PriceTable, Rates, ToolPrice

__all__ = [
    "BillableUsage",
    "CacheCreation",
    "Cost",
    "LongContext",
    "MissingPrice",
    "ModelPrice",
    "PriceTable",
    "Rates",
    "ServerToolUse",
    "ToolPrice",
    "cost",
    "overridden",
    "parse_price_table",
    "price_for",
    "shipped_prices",
    "validate_price_overrides",
    "with_overrides",
    "worst_case",
]
