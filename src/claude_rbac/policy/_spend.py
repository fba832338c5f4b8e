"""Spend limits in US dollars: how a policy writes them, and the integer micro-dollars they are counted in.

A policy writes dollars (``spend = { day = 2.00, month = 40.00 }``); they are read exactly, as ``Decimal``
from the value's text (TOML and JSON floats are parsed as ``Decimal``; a YAML or Python float by its
shortest repr, so ``0.1`` is ``Decimal("0.1")``), and stored as whole micro-dollars ($0.000001): a value
with more than 6 decimals, a negative one, zero, NaN or infinity is a problem naming its field.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final, Literal

__all__ = ["MAX_DOLLARS", "MICRO", "NO_SPEND", "Spend", "SpendPeriod", "dollars_of", "micro_dollars"]

MICRO: Final = 1_000_000
"""Micro-dollars in a dollar."""
MAX_DOLLARS: Final = Decimal(10**9)
"""The largest spend limit a policy may set, in dollars."""
SpendPeriod = Literal["day", "month"]


@dataclass(frozen=True, slots=True)
class Spend:
    """A spend limit per UTC day and/or per UTC month, in whole micro-dollars (``None``: no limit)."""

    day: int | None = None
    month: int | None = None

    def __bool__(self) -> bool:
        return self.day is not None or self.month is not None

    def narrowed(self, other: Spend) -> Spend:
        """The tighter of two limits, period by period."""
        return Spend(_lower(self.day, other.day), _lower(self.month, other.month))


NO_SPEND: Final = Spend()
"""No spend limit."""


def _lower(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def micro_dollars(value: object) -> tuple[int | None, str | None]:
    """(micro-dollars, None) for a dollar amount, or (None, why it is not one). Never rounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None, f"must be an amount in US dollars (a number), got {type(value).__name__}"
    try:
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:  # pragma: no cover - every int, float and Decimal converts
        return None, "must be an amount in US dollars"
    if not amount.is_finite():
        return None, "must be a finite amount in US dollars"
    if amount <= 0:
        return None, f"must be above $0, got {amount}"
    if amount > MAX_DOLLARS:
        return None, f"must be at most ${MAX_DOLLARS}, got {amount}"
    scaled = amount.scaleb(6)
    if scaled != scaled.to_integral_value():
        return None, f"must have at most 6 decimals (whole micro-dollars), got {amount}"
    return int(scaled), None


def dollars_of(micro: int) -> Decimal:
    """Micro-dollars as exact dollars (``2_500_000`` is ``Decimal("2.5")``)."""
    amount = Decimal(micro).scaleb(-6)
    return amount.quantize(Decimal(1)) if amount == amount.to_integral_value() else amount.normalize()
