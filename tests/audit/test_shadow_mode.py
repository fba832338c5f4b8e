"""Shadow mode in every integration: nothing is blocked, and the trail says what would have been.

``RBAC(mode="shadow")`` (or ``mode = "shadow"`` on a role of the policy) evaluates every decision and
records it with ``claude_rbac.enforced=false``; the route guard lets the request in, the governed client
sends the call unchanged (no clamp either).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from claude_rbac.testing import FakeClaude
from tests.support.redis import free_port

from .apps.common import HAIKU, OPUS, Harness
from .conftest import POLICY
from .trail import SENTINEL_PROMPT, AuditTrail, assert_direct_links, attributes, render

MakeApp = Callable[..., Harness]


def test_shadow_never_blocks_and_records_what_it_would_have_blocked(
    make_app: MakeApp, trail: AuditTrail, fake_claude: FakeClaude
) -> None:
    app = make_app(mode="shadow")
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("vera", {"prompt": SENTINEL_PROMPT}),  # a viewer: the route guard and the client would refuse
        ("uma", {"prompt": SENTINEL_PROMPT, "model": OPUS}),  # a model the user role lacks
        ("uma", {"prompt": SENTINEL_PROMPT, "max_tokens": 5000}),  # above the cap of 512
        ("uma", {"prompt": SENTINEL_PROMPT}),
        ("uma", {"prompt": SENTINEL_PROMPT}),  # the third counted call in a minute, at rpm = 2
    ]
    replies = [app.post("/chat", who, body) for who, body in bodies]
    assert [reply.status for reply in replies] == [200] * 5
    sent = fake_claude.calls()
    assert [(call.json["model"], call.json["max_tokens"]) for call in sent] == [
        (HAIKU, 100),
        (OPUS, 100),
        (HAIKU, 5000),  # not clamped: shadow mode changes nothing that is sent
        (HAIKU, 100),
        (HAIKU, 100),
    ]

    assert render(trail.spans, collapse=app.framework_spans) == [
        "SERVER POST /chat -> deny/role_insufficient",
        "  INTERNAL claude_rbac.authorize -> deny/role_insufficient",
        "  CLIENT anthropic.messages.create -> deny/api_access_not_allowed",
        "    INTERNAL claude_rbac.authorize -> deny/api_access_not_allowed",
        *shadow_call("allow/allowed", "deny/model_not_allowed"),
        *shadow_call("allow/allowed", "allow/clamped"),
        *shadow_call("allow/allowed", "allow/allowed"),
        *shadow_call("allow/allowed", "deny/rate_limited"),
    ]
    assert_direct_links(trail)
    decisions = trail.named("claude_rbac.authorize")
    assert len(decisions) == 10  # one per decision: the guard's and the call's, for each request
    assert all(attributes(span)["claude_rbac.enforced"] is False for span in decisions)

    would_have_denied = {key: count for key, count in trail.decision_counts().items() if key[0] == "deny"}
    assert would_have_denied == {
        ("deny", "role_insufficient", "viewer", ""): 1,
        ("deny", "api_access_not_allowed", "viewer", "_other"): 1,  # refused before the model was vetted
        ("deny", "model_not_allowed", "user", "_other"): 1,
        ("deny", "rate_limited", "user", HAIKU): 1,
    }
    records = trail.denial_records()
    assert [(record["reason"], record["enforced"]) for record in records] == [
        ("role_insufficient", False),
        ("api_access_not_allowed", False),
        ("model_not_allowed", False),
        ("rate_limited", False),
    ]
    events = trail.events()
    assert [dict(event.log_record.attributes or {})["claude_rbac.enforced"] for event in events] == [False] * 4
    trail.assert_no_secrets()


def shadow_call(guard: str, call: str) -> list[str]:
    return [
        f"SERVER POST /chat -> {guard}",
        f"  INTERNAL claude_rbac.authorize -> {guard}",
        f"  CLIENT anthropic.messages.create -> {call}",
        f"    INTERNAL claude_rbac.authorize -> {call}",
    ]


def test_shadow_for_one_role_of_the_policy(make_app: MakeApp, trail: AuditTrail, fake_claude: FakeClaude) -> None:
    """Rolling out a stricter user role: users are observed, viewers stay enforced."""
    roles = {**POLICY["roles"], "user": {**POLICY["roles"]["user"], "mode": "shadow"}}
    app = make_app(policy={**POLICY, "roles": roles})
    assert app.post("/chat", "vera", {"prompt": SENTINEL_PROMPT}).status == 403
    assert app.post("/chat", "uma", {"prompt": SENTINEL_PROMPT, "model": OPUS}).status == 200
    assert [call.json["model"] for call in fake_claude.calls()] == [OPUS]
    enforced = [
        (attributes(span)["claude_rbac.decision.reason"], attributes(span)["claude_rbac.enforced"])
        for span in trail.named("claude_rbac.authorize")
    ]
    assert enforced == [("role_insufficient", True), ("allowed", False), ("model_not_allowed", False)]
    trail.assert_no_secrets()


def test_shadow_lets_calls_through_a_storage_outage(
    make_app: MakeApp, trail: AuditTrail, fake_claude: FakeClaude
) -> None:
    app = make_app(mode="shadow", storage=f"redis://127.0.0.1:{free_port()}")  # nothing listens there
    assert app.post("/chat", "uma", {"prompt": SENTINEL_PROMPT}).status == 200
    assert fake_claude.count() == 1
    (call,) = trail.named("anthropic.messages.create")
    assert attributes(call)["claude_rbac.storage_error"] is True
    assert attributes(call)["claude_rbac.decision"] == "allow"
    assert [record.levelname for record in trail.records if "storage failed" in record.getMessage()] == ["WARNING"]
    trail.assert_no_secrets()


@pytest.mark.parametrize("framework", ["flask"])
def test_a_retried_call_leaves_one_decision_in_shadow_mode(
    framework: str, make_app: MakeApp, trail: AuditTrail, fake_claude: FakeClaude
) -> None:
    app = make_app(mode="shadow")
    fake_claude.script_error(529, "overloaded_error")  # the SDK retries the call once
    assert app.post("/chat", "uma", {"prompt": SENTINEL_PROMPT, "model": OPUS}).status == 200
    assert fake_claude.count() == 2
    assert len(trail.call_decision_spans()) == 1
