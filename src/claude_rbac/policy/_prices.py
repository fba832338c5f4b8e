"""Claude's list prices as data: the table shipped with claude_rbac, a policy's changes, the lookup.

Rates are US dollars per million tokens, held as :class:`~decimal.Decimal` from the file on (the TOML
is parsed with ``parse_float=Decimal``; a policy's floats are read by their shortest repr, so
``0.1`` is exactly ``Decimal("0.1")``). A rate nobody published is ``None``: a hole, never a zero.

Which entry prices a model: an exact id wins over every glob. Among matching globs the most specific
wins: the most literal (non-wildcard) characters, then the fewest ``*``, then an entry the policy
added over a shipped one, then the pattern that sorts first by code point, so the answer never
depends on the order of a file. Patterns match the way a role's ``models`` do (:mod:`.patterns`).

Reading and validating the table, and a policy's changes to it, is :mod:`.price_schema`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from ._patterns import MAX_MODEL_NAME, ModelMatcher

__all__ = [
    "LongContext",
    "MissingPrice",
    "ModelPrice",
    "PriceTable",
    "Rates",
    "ToolPrice",
]

_CACHE_SIZE = 4096


class MissingPrice(LookupError):
    """A call needs a price the table does not have. Pricing it anyway would be a guess."""


@dataclass(frozen=True, slots=True)
class Rates:
    """US dollars per million tokens; ``None`` is a rate nobody published."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None
    cache_read: Decimal | None = None


@dataclass(frozen=True, slots=True)
class LongContext:
    """The rates of every token of a request whose prompt is longer than ``above`` tokens."""

    above: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """What one model costs: its rates and the multipliers of the request facts that change them.

    A multiplier of ``None`` means no price is published for that fact (fast mode on a model
    without it, Priority Tier everywhere): a call that needs it is not priced.
    """

    pattern: str
    rates: Rates
    long_context: LongContext | None = None
    batch: Decimal | None = None
    fast: Decimal | None = None
    priority: Decimal | None = None
    inference_geo: tuple[tuple[str, Decimal], ...] = ()
    sources: tuple[str, ...] = ()
    taken: date | None = None

    def rates_for(self, prompt_tokens: int) -> Rates:
        """The rates of a request with this many prompt tokens (input, cache writes and cache reads)."""
        tier = self.long_context
        return tier.rates if tier is not None and prompt_tokens > tier.above else self.rates

    def geo_multiplier(self, geo: str | None) -> Decimal | None:
        """The multiplier of an ``inference_geo``; ``None`` or ``"global"`` is standard pricing."""
        found = dict(self.inference_geo).get(geo) if geo is not None else None
        if found is None and geo in (None, "global"):
            return Decimal(1)
        return found

    def dearest_geo(self) -> str | None:
        """The ``inference_geo`` that costs most here, for a reservation that does not know the geo."""
        dearest = max(self.inference_geo, key=lambda item: item[1], default=None)
        return dearest[0] if dearest is not None and dearest[1] > 1 else None


@dataclass(frozen=True, slots=True)
class ToolPrice:
    """A server tool priced per use (per request the ``usage.server_tool_use`` counter reports)."""

    name: str
    per_use: Decimal
    sources: tuple[str, ...] = ()
    taken: date | None = None


def _specificity(pattern: str) -> tuple[int, int]:
    wildcards = pattern.count("*") + pattern.count("?")
    return (-(len(pattern) - wildcards), pattern.count("*"))


class PriceTable:
    """The prices in force: compiled once, then ``price_for`` is a dict lookup (memoised, bounded).

    Build one with :func:`.price_schema.parse_price_table` or :meth:`with_overrides`; ``fields`` and
    ``defaults`` are the parsed entries it was compiled from, kept to merge a policy's changes over.
    """

    __slots__ = ("_cache", "_exact", "_globs", "defaults", "entries", "fields", "policy_patterns", "tools")

    def __init__(
        self,
        entries: Mapping[str, ModelPrice],
        tools: Mapping[str, ToolPrice],
        *,
        fields: Mapping[str, Mapping[str, Any]],
        defaults: Mapping[str, Any],
        policy_patterns: Iterable[str] = (),
    ) -> None:
        self.entries: Mapping[str, ModelPrice] = dict(entries)
        self.tools: Mapping[str, ToolPrice] = dict(tools)
        self.fields: Mapping[str, Mapping[str, Any]] = {pattern: dict(given) for pattern, given in fields.items()}
        self.defaults: Mapping[str, Any] = dict(defaults)
        self.policy_patterns = frozenset(policy_patterns)
        self._exact = {p: e for p, e in self.entries.items() if "*" not in p and "?" not in p}
        globs = sorted(
            (p for p in self.entries if p not in self._exact),
            key=lambda p: (*_specificity(p), p not in self.policy_patterns, p),
        )
        self._globs = tuple((ModelMatcher([p]), self.entries[p]) for p in globs)
        self._cache: dict[str, ModelPrice | None] = {}

    def price_for(self, model: str) -> ModelPrice | None:
        """The price of ``model``, or ``None`` when the table has none (never a zero price)."""
        if model in self._cache:
            return self._cache[model]
        price = self._exact.get(model)
        if price is None and len(model) <= MAX_MODEL_NAME:
            price = next((entry for matches, entry in self._globs if matches(model)), None)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[model] = price
        return price
