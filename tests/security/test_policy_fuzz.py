"""Fuzzed policies: whatever a policy dict or file holds, it loads into a sound policy or raises PolicyError."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_rbac import Policy, PolicyError, Principal

NAMES = st.sampled_from(["viewer", "user", "power", "admin", "x", "", "User", "a b", "ops:1"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["claude-haiku-*", "claude-opus-4-7", "*", "claude-[", "sk-ant-api03-" + "x" * 30]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
ROLE_KEYS = st.sampled_from(
    [
        "inherits",
        "models",
        "max_tokens",
        "rpm",
        "tpm",
        "allowed",
        "budget",
        "pool",
        "workspace",
        "mode",
        "description",
        "max_token",
        "rmp",
    ]
)


@st.composite
def roles(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in draw(st.lists(NAMES, max_size=5, unique=True)):
        spec: dict[str, Any] = {}
        for key in draw(st.lists(ROLE_KEYS, max_size=5, unique=True)):
            if key == "inherits":
                spec[key] = draw(st.one_of(NAMES, st.lists(NAMES, max_size=3), VALUES))
            elif key == "models":
                spec[key] = draw(
                    st.one_of(
                        st.lists(
                            st.sampled_from(["claude-haiku-*", "claude-opus-4-7", "claude-sonnet-?-6"]), max_size=3
                        ),
                        VALUES,
                    )
                )
            elif key in ("max_tokens", "rpm", "tpm"):
                spec[key] = draw(st.one_of(st.integers(-5, 10**15), VALUES))
            else:
                spec[key] = draw(VALUES)
        out[name] = draw(st.one_of(st.just(spec), VALUES)) if draw(st.integers(0, 9)) == 0 else spec
    return out


@st.composite
def documents(draw: st.DrawFn) -> Any:
    doc: dict[str, Any] = {"roles": draw(st.one_of(roles(), VALUES))}
    for key in draw(
        st.lists(
            st.sampled_from(
                [
                    "version",
                    "on_excess",
                    "mode",
                    "workspaces",
                    "allowed_org_ids",
                    "revoked",
                    "default_workspace",
                    "rolez",
                ]
            ),
            max_size=3,
            unique=True,
        )
    ):
        doc[key] = draw(VALUES)
    return draw(st.one_of(st.just(doc), VALUES)) if draw(st.integers(0, 19)) == 0 else doc


def check_invariants(policy: Policy, doc: Any) -> None:
    for name, role in policy.roles.items():
        own = doc["roles"][name].get("models", [])
        own = [own] if isinstance(own, str) else list(own)
        inherited = {m for parent in role.ancestors for m in (doc["roles"][parent].get("models") or [])}
        assert set(role.models) == set(own) | inherited  # inheritance is the union
        assert name not in role.ancestors  # no cycle survived
        for model in ("claude-haiku-4-5", "claude-opus-4-7", "claude-sonnet-4-6", "anything"):
            decision = policy.decide(Principal("p", name), model=model, max_tokens=1)
            if decision.allowed:  # allowed implies explicitly granted
                assert role.allowed
                assert role.models
                assert role.matcher(model)
        for limit in (role.max_tokens, role.rpm, role.tpm):
            assert limit is None or (isinstance(limit, int) and 0 < limit <= 10**12)


@given(doc=documents())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_dicts_load_soundly_or_raise_policy_error(doc: Any) -> None:
    try:
        policy = Policy.from_dict(doc)
    except PolicyError as exc:
        assert exc.problems
        return
    check_invariants(policy, doc)


@given(doc=documents(), fmt=st.sampled_from(["json", "yaml", "toml"]))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_files_load_soundly_or_raise_policy_error(doc: Any, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"rbac.{fmt}"
        try:
            if fmt == "json":
                path.write_text(json.dumps(doc, allow_nan=True))
            elif fmt == "yaml":
                path.write_text(yaml.safe_dump(doc))
            else:
                path.write_text(_toml(doc))
        except (TypeError, ValueError):
            return  # not expressible in that format
        try:
            policy = Policy.from_file(path)
        except PolicyError as exc:
            assert exc.problems
            assert str(path) in str(exc)
            return
        check_invariants(policy, doc)


def _toml(doc: Any) -> str:
    """A rough TOML writer: enough to put generated documents (and some broken text) on disk."""
    if not isinstance(doc, dict):
        return f"value = {json.dumps(doc)}"
    return "\n".join(f"{json.dumps(str(key))} = {json.dumps(value)}" for key, value in doc.items())


def test_huge_and_strange_numbers() -> None:
    for value in (10**13, 10**100, -1, 0, 1.0, float("inf"), float("nan"), True, "1"):
        try:
            Policy.from_dict({"roles": {"user": {"models": ["m"], "rpm": value}}})
        except PolicyError:
            continue
        raise AssertionError(f"rpm={value!r} loaded")
