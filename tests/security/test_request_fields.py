"""Every request field that changes cost, reach or data residency is governed (issue #15).

The attack: a ``user`` limited to haiku keeps haiku and asks for something else that costs or reaches more:
a web search (billed per search), an MCP server, the priority tier, fast mode, another inference geography,
a beta. One table drives every key through every way of calling Claude (sync and async, streamed, counted,
batched): a role without the grant is refused before FakeClaude receives a byte, a role with it passes and
its field arrives as sent, a grant inherited from a parent passes, and a route scope narrows it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from claude_rbac import RBAC, Principal, RBACError
from claude_rbac.policy import Scope
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-request-fields-tests-00000000000000000000000-RQFD"
HAIKU = "claude-haiku-4-5"
SENTINEL = "another-roles-grant-7f3a"
"""Granted to ``granted`` besides the lever's value: a refusal of another role must never show it."""
MESSAGES = [{"role": "user", "content": "What changed in the release?"}]
WITHOUT, GRANTED, HEIR = Principal("wes", "base"), Principal("gil", "granted"), Principal("hal", "heir")


@dataclass(frozen=True)
class Lever:
    """One grant key, a value a request asks for, where that value travels, and the refusal's reason."""

    key: str
    grant: list[str]
    reason: str
    body: dict[str, Any] = field(default_factory=dict)
    """Body fields (sent with ``extra_body``, or in a batch item's params)."""
    betas: list[str] = field(default_factory=list)
    """The SDK's ``betas=``: the ``anthropic-beta`` header."""

    def arrived(self, fake: FakeClaude, mode: str) -> bool:
        """Whether the last request FakeClaude received carries what this lever asked for."""
        sent = fake.requests[-1]
        if self.betas:
            return set(self.betas) <= set(sent.betas)
        body = sent.json["requests"][0]["params"] if mode == "batch" else sent.json
        return all(body.get(name) == value for name, value in self.body.items())


SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}
LEVERS = {
    "tools": Lever("tools", ["web_search"], "tool_not_allowed", {"tools": [SEARCH]}),
    "mcp_servers": Lever(
        "mcp_servers",
        ["https://mcp.example.com/*"],
        "mcp_server_not_allowed",
        {"mcp_servers": [{"type": "url", "url": "https://mcp.example.com/sse", "name": "docs"}]},
    ),
    "service_tiers": Lever("service_tiers", ["priority"], "service_tier_not_allowed", {"service_tier": "priority"}),
    "speeds": Lever("speeds", ["fast"], "speed_not_allowed", {"speed": "fast"}),
    "inference_geos": Lever("inference_geos", ["us"], "inference_geo_not_allowed", {"inference_geo": "us"}),
    "betas": Lever("betas", ["mcp-client-*"], "beta_not_allowed", betas=["mcp-client-2025-11-20"]),
}
MODES = ["sync", "async", "stream", "async_stream", "count_tokens", "batch"]


def policy_granting(lever: Lever) -> dict[str, Any]:
    return {
        "roles": {
            "base": {"models": ["claude-haiku-*"], "max_tokens": 512},
            "granted": {"inherits": "base", lever.key: [*lever.grant, SENTINEL]},
            "heir": {"inherits": "granted"},
        }
    }


Outcome = str
"""``"sent"``, or the reason of the refusal."""


def _call(rbac: RBAC, who: Principal, scope: Scope | None, mode: str, lever: Lever) -> None:
    messages = rbac.client(who, scope=scope).beta.messages
    base: dict[str, Any] = {"model": HAIKU, "max_tokens": 64, "messages": MESSAGES}
    if mode == "sync":
        messages.create(**base, extra_body=lever.body, betas=lever.betas)
    elif mode == "stream":
        with messages.stream(**base, extra_body=lever.body, betas=lever.betas) as stream:
            stream.get_final_message()
    elif mode == "count_tokens":
        messages.count_tokens(model=HAIKU, messages=MESSAGES, extra_body=lever.body, betas=lever.betas)
    else:
        assert mode == "batch"
        request = {"custom_id": "only", "params": {**base, **lever.body}}
        messages.batches.create(requests=[request], betas=lever.betas)  # type: ignore[list-item]


async def _acall(rbac: RBAC, who: Principal, scope: Scope | None, mode: str, lever: Lever) -> None:
    messages = rbac.async_client(who, scope=scope).beta.messages
    base: dict[str, Any] = {"model": HAIKU, "max_tokens": 64, "messages": MESSAGES}
    if mode == "async":
        await messages.create(**base, extra_body=lever.body, betas=lever.betas)
    else:
        assert mode == "async_stream"
        async with messages.stream(**base, extra_body=lever.body, betas=lever.betas) as stream:
            await stream.get_final_message()


def attempts(rbac: RBAC, mode: str, lever: Lever, calls: list[tuple[Principal, Scope | None]]) -> list[Outcome]:
    """Each call's outcome; async modes run every call on one event loop."""
    if not mode.startswith("async"):
        outcomes = []
        for who, scope in calls:
            try:
                _call(rbac, who, scope, mode, lever)
                outcomes.append("sent")
            except RBACError as exc:
                outcomes.append(exc.reason)
        return outcomes

    async def run() -> list[Outcome]:
        outcomes = []
        for who, scope in calls:
            try:
                await _acall(rbac, who, scope, mode, lever)
                outcomes.append("sent")
            except RBACError as exc:
                outcomes.append(exc.reason)
        await rbac.aclose()
        return outcomes

    return asyncio.run(run())


Make = Callable[..., RBAC]


@pytest.fixture
def make(fake_claude: FakeClaude) -> Iterator[Make]:
    built: list[RBAC] = []

    def build(policy: Any, **options: Any) -> RBAC:
        built.append(RBAC(policy, api_key=KEY, base_url=fake_claude.url, **options))
        return built[-1]

    yield build
    for rbac in built:
        rbac.close()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("lever", LEVERS.values(), ids=LEVERS.keys())
def test_a_role_without_the_grant_is_refused_before_anything_is_sent(
    make: Make, fake_claude: FakeClaude, lever: Lever, mode: str
) -> None:
    assert attempts(make(policy_granting(lever)), mode, lever, [(WITHOUT, None)]) == [lever.reason]
    assert fake_claude.requests == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("lever", LEVERS.values(), ids=LEVERS.keys())
def test_a_granted_role_and_its_heir_pass_with_the_field_as_sent(
    make: Make, fake_claude: FakeClaude, lever: Lever, mode: str
) -> None:
    rbac = make(policy_granting(lever))
    for who in (GRANTED, HEIR):
        assert attempts(rbac, mode, lever, [(who, None)]) == ["sent"]
        assert lever.arrived(fake_claude, mode)
    assert len(fake_claude.requests) == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("lever", LEVERS.values(), ids=LEVERS.keys())
def test_a_route_scope_narrows_the_grant_and_never_widens_it(
    make: Make, fake_claude: FakeClaude, lever: Lever, mode: str
) -> None:
    rbac = make(policy_granting(lever))
    elsewhere = Scope.build(**{lever.key: ["nothing-here-matches"]})
    same = Scope.build(**{lever.key: lever.grant})
    # Two guards on one request intersect: the value must match both.
    both = same.intersect(elsewhere)
    outcomes = attempts(rbac, mode, lever, [(GRANTED, elsewhere), (GRANTED, both), (GRANTED, same), (WITHOUT, same)])
    assert outcomes == [lever.reason, lever.reason, "sent", lever.reason]
    assert len(fake_claude.requests) == 1


@pytest.mark.parametrize("lever", LEVERS.values(), ids=LEVERS.keys())
def test_a_route_refusal_names_the_route_and_the_value_never_other_grants(
    make: Make, fake_claude: FakeClaude, lever: Lever
) -> None:
    rbac = make(policy_granting(lever))
    named = repr(lever.betas[0] if lever.betas else SHOWN.get(lever.key) or next(iter(lever.body.values())))
    with pytest.raises(RBACError) as denied:
        _call(rbac, GRANTED, Scope.build(**{lever.key: []}), "sync", lever)
    assert denied.value.message.startswith("This route does not allow")
    assert named in denied.value.message
    with pytest.raises(RBACError) as refused:
        _call(rbac, WITHOUT, None, "sync", lever)
    assert refused.value.message.startswith("Role 'base' may not")
    assert named in refused.value.message
    assert SENTINEL not in refused.value.message
    assert fake_claude.requests == []


SHOWN = {"tools": "web_search_20250305", "mcp_servers": "https://mcp.example.com/sse"}
"""What a refusal names for the levers whose value is a structure."""


@pytest.mark.parametrize("lever", LEVERS.values(), ids=LEVERS.keys())
def test_rbac_client_keywords_narrow_like_a_route(make: Make, fake_claude: FakeClaude, lever: Lever) -> None:
    rbac = make(policy_granting(lever))
    base: dict[str, Any] = {"model": HAIKU, "max_tokens": 64, "messages": MESSAGES}
    narrowed = rbac.client(GRANTED, **{lever.key: ["nothing-here-matches"]}).beta.messages
    with pytest.raises(RBACError) as denied:
        narrowed.create(**base, extra_body=lever.body, betas=lever.betas)
    assert denied.value.reason == lever.reason
    assert rbac.scope(**{lever.key: lever.grant}) is rbac.scope(**{lever.key: lever.grant})  # cached
    assert rbac.scope(**{lever.key: lever.grant}) != rbac.scope(**{lever.key: ["nothing-here-matches"]})
    rbac.client(GRANTED, **{lever.key: lever.grant}).beta.messages.create(
        **base, extra_body=lever.body, betas=lever.betas
    )
    assert lever.arrived(fake_claude, "sync")
    assert len(fake_claude.requests) == 1
