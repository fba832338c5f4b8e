"""Reading and validating price tables: the shipped ``prices.toml`` and a policy's ``[prices]``.

Everything is checked once, at load, and every problem is reported with the field it is in
(``prices."claude-opus-*".input``), the way a policy's problems are. Numbers become ``Decimal``:
the TOML is parsed with ``parse_float=Decimal``, and a policy's floats (from YAML or JSON) are read
by their shortest repr, so ``0.1`` is exactly ``Decimal("0.1")``.

A policy's entry for a pattern the table has is merged over it field by field (a nested table such
as ``fast``, ``inference_geo`` or ``long_context`` is replaced whole); an entry for a new pattern
needs at least ``input`` and ``output``, and gets the table's defaults (``batch``). Shipped entries
must also name their ``sources`` and the date they were ``taken``; a policy's may.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal, Inexact, InvalidOperation, localcontext
from functools import lru_cache
from importlib import resources
from typing import Any, Final

from ..errors import PolicyError, PolicyProblem
from ._patterns import pattern_problem
from ._prices import LongContext, ModelPrice, PriceTable, Rates, ToolPrice

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "overridden",
    "parse_price_table",
    "price_for",
    "shipped_prices",
    "validate_price_overrides",
    "with_overrides",
]

RATE_FIELDS: Final = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
ENTRY_KEYS: Final = frozenset({*RATE_FIELDS, "batch", "fast", "priority", "inference_geo", "long_context"})
SOURCE_KEYS: Final = frozenset({"sources", "taken"})
LONG_CONTEXT_KEYS: Final = frozenset({"above", *RATE_FIELDS})
FAST_KEYS: Final = frozenset({"input", "output"})
TABLE_KEYS: Final = frozenset({"defaults", "server_tools", "prices"})


class _Problems:
    def __init__(self, source: str | None) -> None:
        self.source = source
        self.items: list[PolicyProblem] = []

    def add(self, field: str, message: str) -> None:
        self.items.append(PolicyProblem(message, self.source, None, field))


def _number(value: object, problems: _Problems, field: str, *, positive: bool = False) -> Decimal | None:
    kind = "a multiplier" if positive else "a price in US dollars"
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        problems.add(field, f"must be {kind}, got {type(value).__name__} {value!r}")
        return None
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        problems.add(field, f"must be {kind}, got {value!r}")
        return None
    if not number.is_finite() or number < 0 or (positive and number == 0):
        problems.add(field, f"must be a finite number {'above' if positive else 'of at least'} 0, got {value!r}")
        return None
    return number


def _unknown(raw: Mapping[str, Any], allowed: Iterable[str], problems: _Problems, field: str) -> None:
    for key in raw:
        if key not in allowed:
            problems.add(f"{field}.{key}", f"unknown key {key!r} (expected {', '.join(sorted(allowed))})")


def _rates(raw: Mapping[str, Any], problems: _Problems, field: str) -> dict[str, Decimal | None]:
    return {name: _number(raw[name], problems, f"{field}.{name}") for name in RATE_FIELDS if name in raw}


def _sources(raw: Mapping[str, Any], problems: _Problems, field: str, *, required: bool) -> dict[str, Any]:
    found: dict[str, Any] = {}
    sources, taken = raw.get("sources"), raw.get("taken")
    if sources is None and required:
        problems.add(f"{field}.sources", "must list the public page(s) the price was taken from")
    elif sources is not None:
        if not isinstance(sources, list) or not sources or not all(isinstance(s, str) and s for s in sources):
            problems.add(f"{field}.sources", "must be a non-empty list of URLs")
        else:
            found["sources"] = tuple(sources)
    if taken is None and required:
        problems.add(f"{field}.taken", "must give the date the price was taken (YYYY-MM-DD)")
    elif taken is not None:
        try:
            found["taken"] = taken if isinstance(taken, date) else date.fromisoformat(str(taken))
        except ValueError:
            problems.add(f"{field}.taken", f"must be a date (YYYY-MM-DD), got {taken!r}")
    return found


def _entry(pattern: object, raw: object, problems: _Problems, *, shipped: bool) -> dict[str, Any] | None:
    """The fields one ``[prices."<pattern>"]`` table gives, parsed and checked on their own."""
    field = f'prices."{pattern}"'
    problem = pattern_problem(pattern)
    if problem is not None:
        problems.add(field, problem)
        return None
    if not isinstance(raw, Mapping):
        problems.add(field, "must be a table of prices")
        return None
    _unknown(raw, ENTRY_KEYS | SOURCE_KEYS, problems, field)
    fields: dict[str, Any] = {**_rates(raw, problems, field), **_sources(raw, problems, field, required=shipped)}
    for name in ("batch", "priority"):
        if name in raw:
            fields[name] = _number(raw[name], problems, f"{field}.{name}", positive=True)
    if "fast" in raw:
        fast = raw["fast"]
        if not isinstance(fast, Mapping) or set(fast) != FAST_KEYS:
            problems.add(f"{field}.fast", "must be a table of the fast-mode `input` and `output` prices")
        else:
            fields["fast"] = (
                _number(fast["input"], problems, f"{field}.fast.input"),
                _number(fast["output"], problems, f"{field}.fast.output"),
            )
    if "inference_geo" in raw:
        geos = raw["inference_geo"]
        if not isinstance(geos, Mapping) or not all(isinstance(geo, str) and geo for geo in geos):
            problems.add(f"{field}.inference_geo", "must be a table of multipliers by inference_geo value")
        else:
            fields["inference_geo"] = tuple(
                (geo, _number(value, problems, f"{field}.inference_geo.{geo}", positive=True))
                for geo, value in sorted(geos.items())
            )
    if "long_context" in raw:
        tier = raw["long_context"]
        if not isinstance(tier, Mapping):
            problems.add(f"{field}.long_context", "must be a table with `above` and the rates above it")
        else:
            _unknown(tier, LONG_CONTEXT_KEYS, problems, f"{field}.long_context")
            above = tier.get("above")
            if isinstance(above, bool) or not isinstance(above, int) or above <= 0:
                problems.add(f"{field}.long_context.above", f"must be a positive number of tokens, got {above!r}")
            fields["long_context"] = (above, _rates(tier, problems, f"{field}.long_context"))
    return fields


def _rates_of(given: Mapping[str, Any], problems: _Problems, field: str) -> Rates | None:
    """The rates of an entry (or of its long-context tier), or ``None`` when one is missing or bad."""
    missing = [name for name in ("input", "output") if name not in given]
    for name in missing:
        problems.add(f"{field}.{name}", f"is required: an entry without `{name}` cannot price a call")
    if missing or any(given[name] is None for name in RATE_FIELDS if name in given):
        return None  # a bad value was reported where it was parsed
    return Rates(
        given["input"],
        given["output"],
        given.get("cache_write_5m"),
        given.get("cache_write_1h"),
        given.get("cache_read"),
    )


def _fast_multiplier(
    fast: tuple[Decimal | None, Decimal | None], rates: Rates, problems: _Problems, field: str
) -> Decimal | None:
    fast_input, fast_output = fast
    if fast_input is None or fast_output is None:
        return None
    if rates.input == 0 or fast_input * rates.output != fast_output * rates.input:
        problems.add(field, "the fast-mode prices must be one multiple of `input` and `output`")
        return None
    with localcontext() as exact:
        exact.traps[Inexact] = True
        try:
            return fast_input / rates.input
        except Inexact:
            problems.add(field, "the fast-mode prices must be an exact decimal multiple of `input` and `output`")
            return None


def _model_price(pattern: str, fields: Mapping[str, Any], problems: _Problems) -> ModelPrice | None:
    field = f'prices."{pattern}"'
    before = len(problems.items)
    rates = _rates_of(fields, problems, field)
    long_context = None
    if "long_context" in fields:
        above, given = fields["long_context"]
        tier_rates = _rates_of(given, problems, f"{field}.long_context")
        if tier_rates is not None and isinstance(above, int) and above > 0:
            long_context = LongContext(above, tier_rates)
    fast = None
    if rates is not None and "fast" in fields:
        fast = _fast_multiplier(fields["fast"], rates, problems, f"{field}.fast")
    if rates is None or len(problems.items) > before:
        return None
    return ModelPrice(
        pattern,
        rates,
        long_context,
        batch=fields.get("batch"),
        fast=fast,
        priority=fields.get("priority"),
        inference_geo=tuple((geo, value) for geo, value in fields.get("inference_geo", ()) if value is not None),
        sources=fields.get("sources", ()),
        taken=fields.get("taken"),
    )


def _compile(
    fields: Mapping[str, Mapping[str, Any]],
    defaults: Mapping[str, Any],
    tools: Mapping[str, ToolPrice],
    problems: _Problems,
    policy_patterns: Iterable[str] = (),
) -> PriceTable | None:
    entries: dict[str, ModelPrice] = {}
    for pattern, given in fields.items():
        price = _model_price(pattern, {"batch": defaults.get("batch"), **given}, problems)
        if price is not None:
            entries[pattern] = price
    if problems.items:
        return None
    return PriceTable(entries, tools, fields=fields, defaults=defaults, policy_patterns=policy_patterns)


def overridden(
    table: PriceTable, overrides: object, source: str | None
) -> tuple[PriceTable | None, list[PolicyProblem]]:
    """``table`` with a policy's ``prices`` applied, or ``None`` and every problem found."""
    problems = _Problems(source)
    if overrides is None:
        return table, []
    if not isinstance(overrides, Mapping):
        problems.add("prices", 'must be a table of `[prices."<model pattern>"]` entries')
        return None, problems.items
    merged = {pattern: dict(given) for pattern, given in table.fields.items()}
    for pattern, raw in overrides.items():
        given = _entry(pattern, raw, problems, shipped=False)
        if given is not None:
            merged[pattern] = {**merged.get(pattern, {}), **given}
    patterns = [pattern for pattern in overrides if isinstance(pattern, str)]
    compiled = _compile(merged, table.defaults, table.tools, problems, patterns)
    return (compiled if not problems.items else None), problems.items


def validate_price_overrides(overrides: object, *, source: str | None = None) -> list[PolicyProblem]:
    """Every problem of a policy's ``prices`` mapping, checked against the shipped table; ``[]`` if none."""
    return overridden(shipped_prices(), overrides, source)[1]


def _table(data: Mapping[str, Any], key: str, problems: _Problems) -> Mapping[str, Any]:
    value = data.get(key, {})
    if isinstance(value, Mapping):
        return value
    problems.add(key, "must be a table")
    return {}


def parse_price_table(text: str, *, source: str | None = None) -> PriceTable:
    """Read a table in the shipped file's shape (TOML). Every entry must carry sources and a date."""
    problems = _Problems(source)
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([PolicyProblem(f"cannot parse the price table: {exc}", source)]) from None
    _unknown(data, TABLE_KEYS, problems, "table")
    defaults, server_tools, prices = (_table(data, key, problems) for key in ("defaults", "server_tools", "prices"))
    _unknown(defaults, {"batch", *SOURCE_KEYS}, problems, "defaults")
    parsed_defaults: dict[str, Any] = {}
    if "batch" in defaults:
        parsed_defaults["batch"] = _number(defaults["batch"], problems, "defaults.batch", positive=True)
        _sources(defaults, problems, "defaults", required=True)
    tools: dict[str, ToolPrice] = {}
    for name, raw in server_tools.items():
        field = f"server_tools.{name}"
        if not isinstance(raw, Mapping):
            problems.add(field, "must be a table with `per_use`")
            continue
        _unknown(raw, {"per_use", *SOURCE_KEYS}, problems, field)
        per_use = _number(raw.get("per_use"), problems, f"{field}.per_use")
        found = _sources(raw, problems, field, required=True)
        if per_use is not None:
            tools[name] = ToolPrice(name, per_use, found.get("sources", ()), found.get("taken"))
    fields: dict[str, dict[str, Any]] = {}
    for pattern, raw in prices.items():
        given = _entry(pattern, raw, problems, shipped=True)
        if given is not None:
            fields[pattern] = given
    table = _compile(fields, parsed_defaults, tools, problems)
    if table is None or problems.items:
        raise PolicyError(problems.items)
    return table


@lru_cache(maxsize=1)
def shipped_prices() -> PriceTable:
    """The table shipped in the package (``prices.toml``), read and compiled once."""
    text = resources.files(__package__ or "claude_rbac.policy").joinpath("prices.toml").read_text(encoding="utf-8")
    return parse_price_table(text, source="claude_rbac/policy/prices.toml")


def price_for(model: str) -> ModelPrice | None:
    """The shipped price of ``model``, or ``None`` when there is none."""
    return shipped_prices().price_for(model)


def with_overrides(table: PriceTable, overrides: Mapping[str, Any] | None, *, source: str | None = None) -> PriceTable:
    """``table`` with a policy's ``prices`` applied; a :class:`PolicyError` lists every problem."""
    updated, problems = overridden(table, overrides, source)
    if updated is None:
        raise PolicyError(problems)
    return updated
