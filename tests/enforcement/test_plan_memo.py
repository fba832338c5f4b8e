"""The plan of a plain call is decided once per generation, role, scope, endpoint, model and max_tokens.

A memo must never serve a grant the policy in force does not give: not across a reload (each generation
has its own memo), not across route scopes (a scope is part of the key, and checked by identity), not
across roles. And a hit must be the plan the policy would have made: the property test compares them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_rbac import RBAC, AccessDenied, Policy, Principal
from claude_rbac.policy import UNRESTRICTED, PlanMemo, Scope, plan_call
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-plan-memo-tests-00000000000000000000000000000000-MEMO"
ALICE = Principal("alice", "user")
PAUL = Principal("paul", "power")
HAIKU, SONNET = "claude-haiku-4-5", "claude-sonnet-4-6"


def policy_text(user_cap: int, user_models: str = '["claude-haiku-*"]') -> str:
    return (
        f"version = 1\n[roles.user]\nmodels = {user_models}\nmax_tokens = {user_cap}\n"
        '[roles.power]\ninherits = ["user"]\nmodels = ["claude-sonnet-*"]\nmax_tokens = 4096\n'
    )


def ask(rbac: RBAC, principal: Principal, fake: FakeClaude, *, model: str = HAIKU, **scope: Any) -> int:
    """The max_tokens Claude was sent for a call asking 1,000 (the clamp in force)."""
    client = rbac.client(principal, **scope)
    client.messages.create(model=model, max_tokens=1000, messages=[{"role": "user", "content": "hi"}])
    return int(fake.requests[-1].json["max_tokens"])


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "rbac.toml"
    path.write_text(policy_text(512))
    return path


def test_a_reload_is_never_served_the_last_policy_s_plans(policy_path: Path, fake_claude: FakeClaude) -> None:
    with RBAC(policy_path, api_key=KEY, base_url=fake_claude.url) as rbac:
        assert ask(rbac, ALICE, fake_claude) == 512
        assert ask(rbac, ALICE, fake_claude) == 512  # the memo's
        assert rbac.enforcer.generation.plan_memo  # it was used
        policy_path.write_text(policy_text(64))
        rbac.reload_policy()
        assert ask(rbac, ALICE, fake_claude) == 64
        policy_path.write_text(policy_text(64, user_models='["claude-opus-*"]'))  # haiku withdrawn
        rbac.reload_policy()
        with pytest.raises(AccessDenied) as denied:
            ask(rbac, ALICE, fake_claude)
        assert denied.value.reason == "model_not_allowed"
        policy_path.write_text("not toml [")  # a refused reload: the same grants, a new generation
        with pytest.raises(Exception, match="cannot parse"):
            rbac.reload_policy()
        with pytest.raises(AccessDenied):
            ask(rbac, ALICE, fake_claude)
    assert fake_claude.count() == 3


def test_scopes_and_roles_never_share_a_plan(policy_path: Path, fake_claude: FakeClaude) -> None:
    with RBAC(policy_path, api_key=KEY, base_url=fake_claude.url) as rbac:
        assert ask(rbac, PAUL, fake_claude, model=SONNET) == 1000
        with pytest.raises(AccessDenied):  # the same request from a user: sonnet is not hers
            ask(rbac, ALICE, fake_claude, model=SONNET)
        assert ask(rbac, PAUL, fake_claude, model=SONNET, max_tokens=100) == 100  # the route narrows it
        with pytest.raises(AccessDenied) as denied:
            ask(rbac, PAUL, fake_claude, model=SONNET, models="claude-haiku-*")
        assert denied.value.reason == "model_not_allowed"
        assert ask(rbac, PAUL, fake_claude, model=SONNET) == 1000  # and unscoped again, as before
        assert ask(rbac, ALICE, fake_claude) == 512


def test_a_hit_checks_the_scope_and_the_policy_it_was_made_for() -> None:
    """Equal keys, other objects: an equal-looking scope or another policy is a miss, never a hit."""
    memo: PlanMemo = {}
    body = {"model": HAIKU, "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}
    wide, narrow = Policy.from_dict(_roles(4096)), Policy.from_dict(_roles(100))
    first = plan_call(wide, ALICE, UNRESTRICTED, "POST", "/v1/messages", body, memo=memo)
    assert first.decision.max_tokens_effective == 1000
    key = next(iter(memo))
    memo[key] = (wide, Scope(), memo[key][2])  # the same key, held for an equal scope that is not this one
    assert plan_call(narrow, ALICE, UNRESTRICTED, "POST", "/v1/messages", body, memo=memo).body == {
        **body,
        "max_tokens": 100,
    }


def _roles(cap: int) -> dict[str, Any]:
    return {"roles": {"user": {"models": ["claude-haiku-*"], "max_tokens": cap}}}


POLICIES = [
    Policy.from_dict(
        {
            "roles": {
                "user": {"models": ["claude-haiku-*", "claude-sonnet-*"], "max_tokens": 512},
                "power": {"inherits": ["user"], "models": ["claude-opus-*"], "max_tokens": 2048},
            }
        }
    ),
    Policy.from_dict(
        {"on_excess": "reject", "roles": {"user": {"models": ["claude-haiku-*"], "max_tokens": 300, "tpm": 10**6}}}
    ),
    # A spend limit prices each call's own prompt: the memo must never hand one call's reservation to another.
    Policy.from_dict(
        {"roles": {"user": {"models": ["claude-haiku-*", "claude-sonnet-*"], "max_tokens": 512, "spend": {"day": 2}}}}
    ),
]
SCOPES = [
    UNRESTRICTED,
    Scope.build(models="claude-sonnet-*"),
    Scope.build(max_tokens=200),
    Scope.build(spend={"day": 1}),
]
plain_bodies = st.fixed_dictionaries(
    {
        # Few values, so that calls meet in the memo
        "model": st.sampled_from([HAIKU, SONNET, "claude-opus-4-7"]),
        "max_tokens": st.sampled_from([True, 1, 250, 1000]),
        "messages": st.lists(
            st.fixed_dictionaries({"role": st.just("user"), "content": st.text(max_size=40)}), min_size=1, max_size=2
        ),
    },
    optional={
        "stream": st.sampled_from([True, 1]),
        "temperature": st.sampled_from([0.0, 1, None]),
        "system": st.text(max_size=20),
        "tools": st.just([{"type": "web_search_20250305", "name": "web_search"}]),
        "fallbacks": st.just([{"model": "claude-opus-4-7"}]),
        "service_tier": st.just("priority"),
        "surprise": st.just({"model": "claude-opus-4-7"}),
    },
)


calls = st.tuples(
    plain_bodies,
    st.sampled_from(POLICIES),
    st.sampled_from(SCOPES),
    st.sampled_from([ALICE, PAUL]),
    st.fixed_dictionaries(
        {
            "enforce": st.booleans(),
            "nonstreaming_limit": st.sampled_from([None, 200]),
            "headers": st.sampled_from([{}, {"anthropic-beta": "files-api-2025-04-14"}]),
            "count_tokens": st.booleans(),
        }
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(calls, min_size=1, max_size=40))
def test_a_memo_hit_is_the_plan_the_policy_makes(
    sequence: list[tuple[dict[str, Any], Policy, Scope, Principal, dict[str, Any]]],
) -> None:
    """One memo across policies, scopes, roles and options: every answer is the one planned afresh."""
    memo: PlanMemo = {}
    for body, policy, scope, principal, options in sequence:
        fresh = plan_call(policy, principal, scope, "POST", "/v1/messages", body, **options)
        remembered = plan_call(policy, principal, scope, "POST", "/v1/messages", body, memo=memo, **options)
        assert remembered == fresh


BASE: dict[str, Any] = {"model": SONNET, "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}
OPTIONS: dict[str, Any] = {"enforce": True, "nonstreaming_limit": None, "headers": {}, "count_tokens": True}


@pytest.mark.parametrize(
    ("change", "value", "common"),
    [
        ("policy", POLICIES[1], {}),
        ("scope", SCOPES[2], {}),
        ("scope", Scope.build(max_tokens=200), {}),  # equal to SCOPES[2], another object
        ("principal", ALICE, {}),
        ("enforce", False, {"max_tokens": 3000}),  # clamped when enforced, sent as asked in shadow mode
        ("enforce", False, {"max_tokens": 3000, "nonstreaming_limit": 2500}),  # and then too long unless streamed
        ("nonstreaming_limit", 200, {}),
        ("headers", {"anthropic-beta": "files-api-2025-04-14"}, {}),
        ("max_tokens", True, {"max_tokens": 1}),  # True == 1, and True is refused
        ("model", HAIKU, {}),
        ("stream", True, {"nonstreaming_limit": 500}),  # too long unless streamed
        ("tools", [{"type": "web_search_20250305", "name": "web_search"}], {}),
        ("url", "/v1/messages/count_tokens", {}),
        # A hit: only the prompt differs, and the body and the estimate are this prompt's
        ("messages", [{"role": "user", "content": "a longer question " * 20}], {}),
        ("messages", [{"role": "user", "content": "in shadow mode"}], {"max_tokens": 3000, "enforce": False}),
        ("messages", [{"role": "user", "content": "clamped"}], {"max_tokens": 3000}),
        ("messages", [{"role": "user", "content": "no estimate"}], {"count_tokens": False}),
    ],
)
def test_each_thing_a_plan_depends_on_is_in_its_key(change: str, value: Any, common: dict[str, Any]) -> None:
    """A call differing from a remembered one in one thing only gets its own plan, not the remembered one."""
    memo: PlanMemo = {}
    body = {**BASE, **{key: item for key, item in common.items() if key in BASE}}
    first = {"policy": POLICIES[0], "scope": UNRESTRICTED, "principal": PAUL, "body": body, "url": "/v1/messages"}
    first_options = {**OPTIONS, **{key: item for key, item in common.items() if key in OPTIONS}}
    second, second_options = dict(first), dict(first_options)
    if change in first:
        second[change] = value
    elif change in first_options:
        second_options[change] = value
    else:
        second["body"] = {**body, change: value}
    for call, options in ((first, first_options), (second, second_options)):
        args = (call["policy"], call["principal"], call["scope"], "POST", call["url"], call["body"])
        assert plan_call(*args, memo=memo, **options) == plan_call(*args, **options)
    assert len(memo) >= 1


@pytest.mark.parametrize("spends", ["role", "scope"])
def test_a_call_that_reserves_dollars_is_planned_from_its_own_prompt(spends: str) -> None:
    """Each prompt prices its own worst case: a memo hit keeps the decision and prices this prompt afresh."""
    policy = POLICIES[2] if spends == "role" else POLICIES[0]
    scope = UNRESTRICTED if spends == "role" else SCOPES[3]
    memo: PlanMemo = {}
    reserved = []
    for text in ["hi", "a much longer question " * 50]:
        body = {**BASE, "model": HAIKU, "messages": [{"role": "user", "content": text}]}
        fresh = plan_call(policy, ALICE, scope, "POST", "/v1/messages", body)
        assert plan_call(policy, ALICE, scope, "POST", "/v1/messages", body, memo=memo) == fresh
        reserved.append(fresh.spend)
    assert 0 < reserved[0] < reserved[1]
    assert len(memo) == 1, "the second call was a hit"
