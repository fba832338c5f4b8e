"""Properties of the compiled policy, over generated role graphs and names."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from claude_rbac import Policy, PolicyError, Principal

ROLE_NAMES = st.sampled_from(["viewer", "user", "power", "admin", "ops", "audit"])
MODEL_IDS = st.from_regex(r"claude-[a-z]{2,8}-[0-9]-[0-9]{1,2}", fullmatch=True)
PATTERNS = st.one_of(MODEL_IDS, MODEL_IDS.map(lambda m: m.rsplit("-", 2)[0] + "-*"))


@st.composite
def acyclic_policies(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(ROLE_NAMES, min_size=1, max_size=6, unique=True))
    roles: dict[str, Any] = {}
    for index, name in enumerate(names):
        # Parents come from earlier roles only, so the graph has no cycle.
        parents = draw(st.lists(st.sampled_from(names[:index]), unique=True, max_size=2)) if index else []
        spec: dict[str, Any] = {"models": draw(st.lists(PATTERNS, max_size=3, unique=True))}
        if parents:
            spec["inherits"] = parents
        if draw(st.booleans()):
            spec["max_tokens"] = draw(st.integers(1, 10_000))
        if not spec["models"] and not parents:
            spec["allowed"] = False
        roles[name] = spec
    return {"roles": roles}


def _ancestors(data: dict[str, Any], name: str) -> set[str]:
    seen: set[str] = set()
    stack = list(data["roles"][name].get("inherits", []))
    while stack:
        parent = stack.pop()
        if parent not in seen:
            seen.add(parent)
            stack.extend(data["roles"][parent].get("inherits", []))
    return seen


def _granted(data: dict[str, Any], name: str) -> set[str]:
    return {p for role in {name} | _ancestors(data, name) for p in data["roles"][role]["models"]}


def _matches(pattern: str, model: str) -> bool:
    if "*" not in pattern:
        return pattern == model
    return re.fullmatch(re.escape(pattern).replace(r"\*", "[a-z0-9._:@/-]*"), model) is not None


@given(data=acyclic_policies(), model=MODEL_IDS)
@settings(max_examples=300)
def test_allowed_implies_explicitly_granted(data: dict[str, Any], model: str) -> None:
    try:
        policy = Policy.from_dict(data)
    except PolicyError:
        return  # e.g. an allowed role whose graph grants nothing
    for name in policy.roles:
        decision = policy.decide(Principal("p", name), model=model, max_tokens=1)
        if decision.allowed:
            assert any(_matches(pattern, model) for pattern in _granted(data, name))


@given(data=acyclic_policies())
@settings(max_examples=300)
def test_inherited_grants_are_the_union_over_ancestors(data: dict[str, Any]) -> None:
    try:
        policy = Policy.from_dict(data)
    except PolicyError:
        return
    for name, role in policy.roles.items():
        assert set(role.models) == _granted(data, name)
        assert role.ancestors == _ancestors(data, name)


HOMOGLYPHS = {"a": "а", "c": "с", "e": "е", "o": "о", "p": "р", "i": "і", "l": "ӏ", "u": "υ", "s": "ѕ"}


@st.composite
def variants(draw: st.DrawFn, name: str) -> str:
    kind = draw(st.sampled_from(["case", "space", "nfkc", "homoglyph", "invisible"]))
    if kind == "case":
        flips = draw(st.lists(st.integers(0, len(name) - 1), min_size=1, unique=True))
        chars = list(name)
        for index in flips:
            chars[index] = chars[index].swapcase()
        variant = "".join(chars)
    elif kind == "space":
        variant = draw(st.sampled_from([" ", "\t", "\n", "\u00a0", "\u3000"])).join(
            draw(st.sampled_from([("", name), (name, ""), ("", name + " ")]))
        )
    elif kind == "nfkc":
        # Full-width forms normalise (NFKC) back to ASCII: a look-alike that only normalisation would unify.
        index = draw(st.integers(0, len(name) - 1))
        char = name[index]
        wide = chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char
        variant = name[:index] + wide + name[index + 1 :]
        assert unicodedata.normalize("NFKC", variant) == name
    elif kind == "homoglyph":
        candidates = [i for i, char in enumerate(name) if char in HOMOGLYPHS]
        assume(candidates)
        index = draw(st.sampled_from(candidates))
        variant = name[:index] + HOMOGLYPHS[name[index]] + name[index + 1 :]
    else:
        index = draw(st.integers(0, len(name)))
        variant = name[:index] + draw(st.sampled_from(["\u200b", "\u200d", "\ufeff"])) + name[index:]
    assume(variant != name)
    return variant


GRANTED_MODEL = "claude-haiku-4-5"
POLICY = Policy.from_dict({"roles": {"user": {"models": [GRANTED_MODEL, "claude-sonnet-*"], "max_tokens": 100}}})


@given(variant=variants(GRANTED_MODEL))
@settings(max_examples=400)
def test_no_model_name_variant_is_ever_allowed(variant: str) -> None:
    assert POLICY.decide(Principal("p", "user"), model=GRANTED_MODEL, max_tokens=1).allowed
    assert not POLICY.decide(Principal("p", "user"), model=variant, max_tokens=1).allowed


@given(variant=variants("claude-sonnet-4-6"))
@settings(max_examples=400)
def test_no_variant_of_a_pattern_match_is_allowed(variant: str) -> None:
    # The wildcard matches only the lower-case model-id alphabet, so a variant of an allowed
    # name is refused even where it falls inside the wildcard.
    assert not POLICY.decide(Principal("p", "user"), model=variant, max_tokens=1).allowed


@given(variant=variants("user"))
@settings(max_examples=300)
def test_no_role_name_variant_is_ever_allowed(variant: str) -> None:
    principal = Principal("p", variant)
    assert not POLICY.decide(principal, model=GRANTED_MODEL, max_tokens=1).allowed
    assert not POLICY.has_role(principal, "user")
