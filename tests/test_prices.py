"""The shipped price table, the lookup by model pattern, and the validation of a policy's prices."""

from __future__ import annotations

import typing
from datetime import date
from decimal import Decimal as D
from typing import Any

import anthropic.types
import pytest

from claude_rbac.errors import PolicyError
from claude_rbac.policy.prices import (
    PriceTable,
    Rates,
    parse_price_table,
    price_for,
    shipped_prices,
    validate_price_overrides,
    with_overrides,
)

# Models of the installed SDK with no Anthropic page giving their prices (the report lists why).
UNPRICED = {"claude-mythos-5-2", "claude-mythos-preview"}
# "Cache read (hit): 0.1x base input price (0.025x on Claude Fable 5.1 and Claude Mythos 5.1; 0.05x on
# Claude Opus 5.5 and Claude Sonnet 5.5)".
CACHE_READ = {"claude-fable-5-1": D("0.025"), "claude-mythos-5-1": D("0.025"), "claude-opus-5-5": D("0.05")}
CACHE_READ["claude-sonnet-5-5"] = D("0.05")


def sdk_models() -> set[str]:
    literal = typing.get_args(anthropic.types.Model)[0]
    return set(typing.get_args(literal))


def test_every_model_the_sdk_names_is_priced_or_a_known_hole() -> None:
    assert {"claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5"} <= set(shipped_prices().entries)
    unpriced = {model for model in sdk_models() if price_for(model) is None}
    assert unpriced == UNPRICED, "a new SDK model: add its published price to prices.toml, or name the hole"


def test_every_entry_names_its_public_source_and_date() -> None:
    table = shipped_prices()
    for entry in [*table.entries.values(), *table.tools.values()]:
        assert entry.sources, entry
        assert all(url.startswith("https://platform.claude.com/docs/") for url in entry.sources), entry
        assert isinstance(entry.taken, date), entry


@pytest.mark.parametrize("pattern", sorted(shipped_prices().entries))
def test_each_row_obeys_the_published_cache_multipliers(pattern: str) -> None:
    """Catches a mistyped digit: every cache column is a published multiple of the input column."""
    price = shipped_prices().entries[pattern]
    for rates in filter(None, [price.rates, price.long_context and price.long_context.rates]):
        if rates.cache_read is None:
            assert (rates.cache_write_5m, rates.cache_write_1h) == (None, None)
            continue
        assert rates.cache_write_5m == rates.input * D("1.25")
        assert rates.cache_write_1h == rates.input * 2
        assert rates.cache_read == rates.input * CACHE_READ.get(pattern, D("0.1"))


def test_the_shipped_modifiers_are_the_published_ones() -> None:
    table = shipped_prices()
    assert {p for p, e in table.entries.items() if e.fast is not None} == {
        "claude-opus-5-5",
        "claude-opus-5",
        "claude-opus-4-8",
        "claude-opus-4-6",
    }
    assert [table.entries[p].fast for p in ("claude-opus-5-5", "claude-opus-4-8", "claude-opus-4-6")] == [2, 2, 1]
    assert all(entry.priority is None for entry in table.entries.values())
    assert all(entry.batch == D("0.5") for entry in table.entries.values())
    no_geo = {p for p, e in table.entries.items() if not e.inference_geo}
    assert no_geo == {
        p for p in table.entries if p.startswith(("claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5"))
    }
    assert all(dict(e.inference_geo) == {"us": D("1.1")} for e in table.entries.values() if e.inference_geo)
    haiku = table.entries["claude-haiku-5-5"].long_context
    assert haiku is not None
    assert (haiku.above, haiku.rates.input, haiku.rates.output) == (100_000, D("0.50"), D("2.50"))
    assert {name: tool.per_use for name, tool in table.tools.items()} == {"web_search": D("0.01"), "web_fetch": 0}


def glob_table(**extra: dict[str, Any]) -> PriceTable:
    entries = {
        "claude-zz-*": {"input": 1, "output": 1},
        "claude-zz-a*": {"input": 2, "output": 2},
        "claude-zz-?1": {"input": 3, "output": 3},
        "claude-zz-a?": {"input": 4, "output": 4},
        "claude-zz-a1": {"input": 5, "output": 5},
        "claude-ww-a*": {"input": 6, "output": 6},
        "claude-ww-*b": {"input": 7, "output": 7},
        **extra,
    }
    return with_overrides(shipped_prices(), entries)


@pytest.mark.parametrize(
    ("model", "pattern"),
    [
        ("claude-zz-a1", "claude-zz-a1"),  # an exact id wins over every glob
        ("claude-zz-b1", "claude-zz-?1"),  # more literal characters win
        ("claude-zz-a2", "claude-zz-a?"),  # as many literals: fewer `*` wins
        ("claude-zz-a22", "claude-zz-a*"),
        ("claude-zz-b22", "claude-zz-*"),
        ("claude-ww-ab", "claude-ww-*b"),  # a full tie: the pattern that sorts first by code point
        ("claude-opus-4-7", "claude-opus-4-7"),  # the shipped exact ids are still there
    ],
)
def test_the_most_specific_pattern_prices_a_model(model: str, pattern: str) -> None:
    price = glob_table().price_for(model)
    assert price is not None
    assert price.pattern == pattern


def test_a_policy_pattern_wins_a_tie_with_a_shipped_one() -> None:
    shipped = parse_price_table(
        """
        [prices."claude-yy-*-x"]
        input = 1
        output = 1
        sources = ["https://platform.claude.com/docs/en/about-claude/pricing"]
        taken = 2026-11-30
        """
    )
    table = with_overrides(shipped, {"claude-yy-x-*": {"input": 2, "output": 2}})
    assert table.policy_patterns == {"claude-yy-x-*"}
    found = [table.price_for(model) for model in ("claude-yy-x-x", "claude-yy-a-x")]
    assert [price.pattern if price else None for price in found] == ["claude-yy-x-*", "claude-yy-*-x"]


@pytest.mark.parametrize("model", ["claude-opus-9", "Claude-Opus-4-7", "claude-opus-4-7 ", "", "x" * 300])
def test_no_price_is_none_never_zero(model: str) -> None:
    assert price_for(model) is None
    assert glob_table().price_for(model) is None


def test_a_policy_entry_is_merged_over_the_shipped_one_field_by_field() -> None:
    table = with_overrides(shipped_prices(), {"claude-opus-5-5": {"input": 2.0, "output": D(10), "sources": ["a"]}})
    price = table.price_for("claude-opus-5-5")
    assert price is not None
    assert (price.rates.input, price.rates.output, price.rates.cache_read) == (D(2), D(10), D("0.20"))
    assert (price.fast, price.batch, price.sources) == (D(4), D("0.5"), ("a",))  # the $8/$40 fast prices stay
    new = with_overrides(shipped_prices(), {"claude-opus-*": {"input": 0.1, "output": "75"}}).price_for("claude-opus-4")
    assert new is not None
    assert (new.rates, new.batch, new.taken) == (Rates(D("0.1"), D(75)), D("0.5"), None)
    assert with_overrides(shipped_prices(), None) is shipped_prices()


BAD = [
    (["claude-opus-*"], "prices", "must be a table of"),
    ({"claude opus": {"input": 1, "output": 1}}, 'prices."claude opus"', "can never match a model id"),
    ({"claude-x": 15}, 'prices."claude-x"', "must be a table of prices"),
    ({"claude-x": {"inputs": 1, "output": 1}}, 'prices."claude-x".inputs', "unknown key 'inputs'"),
    ({"claude-x": {"output": 1}}, 'prices."claude-x".input', "is required"),
    ({"claude-x": {"input": -1, "output": 1}}, 'prices."claude-x".input', "of at least 0"),
    ({"claude-x": {"input": "abc", "output": 1}}, 'prices."claude-x".input', "must be a price in US dollars"),
    ({"claude-x": {"input": True, "output": 1}}, 'prices."claude-x".input', "got bool"),
    ({"claude-x": {"input": float("nan"), "output": 1}}, 'prices."claude-x".input', "finite"),
    ({"claude-x": {"input": 1, "output": 1, "batch": 0}}, 'prices."claude-x".batch', "above 0"),
    ({"claude-opus-5-5": {"fast": {"input": 8}}}, 'prices."claude-opus-5-5".fast', "`input` and `output`"),
    ({"claude-opus-5-5": {"fast": {"input": 8, "output": 50}}}, 'prices."claude-opus-5-5".fast', "one multiple"),
    ({"claude-opus-5-5": {"input": 3, "output": 15}}, 'prices."claude-opus-5-5".fast', "exact decimal multiple"),
    ({"claude-x": {"input": 1, "output": 1, "inference_geo": 1.1}}, 'prices."claude-x".inference_geo', "multipliers"),
    ({"claude-x": {"input": 1, "output": 1, "long_context": {"above": -1}}}, "long_context.above", "positive"),
    ({"claude-x": {"input": 1, "output": 1, "long_context": {"above": 9}}}, "long_context.input", "is required"),
    ({"claude-x": {"input": 1, "output": 1, "taken": "yesterday"}}, 'prices."claude-x".taken', "must be a date"),
    ({"claude-x": {"input": 1, "output": 1, "sources": "https://x"}}, 'prices."claude-x".sources', "list of URLs"),
]


@pytest.mark.parametrize(("overrides", "field", "message"), BAD)
def test_a_bad_price_override_is_named_by_its_field(overrides: object, field: str, message: str) -> None:
    problems = validate_price_overrides(overrides, source="rbac.toml")
    assert any(p.field is not None and p.field.endswith(field) and message in p.message for p in problems), problems
    assert all(problem.source == "rbac.toml" for problem in problems)
    with pytest.raises(PolicyError, match=message):
        with_overrides(shipped_prices(), overrides, source="rbac.toml")  # type: ignore[arg-type]


def test_every_problem_of_an_override_table_is_reported_at_once() -> None:
    problems = validate_price_overrides({"claude-a": {"input": -1}, "claude-b": {"output": "x", "cache_read": 1}})
    assert sorted(str(problem) for problem in problems) == [
        'prices."claude-a".input: must be a finite number of at least 0, got -1',
        'prices."claude-a".output: is required: an entry without `output` cannot price a call',
        'prices."claude-b".input: is required: an entry without `input` cannot price a call',
        "prices.\"claude-b\".output: must be a price in US dollars, got 'x'",
    ]
    assert validate_price_overrides({"claude-opus-*": {"input": 15.0, "output": 75}}) == []


def test_a_shipped_table_needs_sources_dates_and_parseable_toml() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_price_table('[prices."claude-x"]\ninput = 1\noutput = 1\n[server_tools.search]\nper_use = -1', source="t")
    assert sorted(str(problem) for problem in caught.value.problems) == [
        't: prices."claude-x".sources: must list the public page(s) the price was taken from',
        't: prices."claude-x".taken: must give the date the price was taken (YYYY-MM-DD)',
        "t: server_tools.search.per_use: must be a finite number of at least 0, got -1",
        "t: server_tools.search.sources: must list the public page(s) the price was taken from",
        "t: server_tools.search.taken: must give the date the price was taken (YYYY-MM-DD)",
    ]
    with pytest.raises(PolicyError, match="cannot parse the price table"):
        parse_price_table("[prices", source="t")
    with pytest.raises(PolicyError, match="unknown key 'extra'"):
        parse_price_table("extra = 1")
