"""The TTL a reservation prices cache writes at: the dearest ``cache_control`` breakpoint anywhere in the prompt."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from claude_rbac.policy import cache_ttl

breakpoints = st.sampled_from(
    [{"type": "ephemeral"}, {"type": "ephemeral", "ttl": "5m"}, {"type": "ephemeral", "ttl": "1h"}]
)
leaves = st.one_of(st.none(), st.text(max_size=5), st.integers(), breakpoints, st.just({"type": "ephemeral", "x": 1}))
prompts = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["cache_control", "content", "type", "text"]), inner, max_size=3),
    ),
    max_leaves=25,
)


def dearest(value: Any) -> set[str]:
    """Every TTL named in ``value``, read the plain recursive way."""
    if isinstance(value, dict):
        if value.get("type") == "ephemeral" and set(value) <= {"type", "ttl"}:
            return {"1h" if value.get("ttl") == "1h" else "5m"}
        return set().union(*(dearest(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(dearest(item) for item in value))
    return set()


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["cache_control", "tools", "system", "messages", "metadata"]), prompts))
def test_the_reserved_ttl_is_the_dearest_breakpoint_of_the_prompt(body: dict[str, Any]) -> None:
    named = set().union(*(dearest(body.get(name)) for name in ("cache_control", "tools", "system", "messages")))
    assert cache_ttl(body) == ("1h" if "1h" in named else "5m" if named else None)


def test_a_breakpoint_outside_the_prompt_is_not_one() -> None:
    assert cache_ttl({"metadata": {"type": "ephemeral", "ttl": "1h"}, "messages": []}) is None
    assert cache_ttl({"messages": [{"content": [{"cache_control": {"type": "ephemeral"}}]}]}) == "5m"
