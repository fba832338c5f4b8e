"""The SDK middleware stands on its own: built from an Enforcer (no RBAC), on a plain anthropic client."""

from __future__ import annotations

import anthropic
import pytest

from claude_rbac import AccessDenied, Policy, Principal
from claude_rbac.enforcement import Auditor, Binding, Enforcer, Governor
from claude_rbac.policy import UNRESTRICTED
from claude_rbac.quota import Quota
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-governor-unit-000000000000000000000000000000-GOVR"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def enforcer(fake_claude: FakeClaude) -> Enforcer:
    return Enforcer(
        Policy.default(), quota=Quota("memory://"), auditor=Auditor(), api_key=KEY, base_url=fake_claude.url
    )


def plain_client(enforcer: Enforcer, fake_claude: FakeClaude, principal: Principal) -> anthropic.Anthropic:
    governor = Governor(enforcer, Binding(principal, UNRESTRICTED), default_base_url=fake_claude.url)
    return anthropic.Anthropic(api_key="not-the-key", base_url=fake_claude.url, middleware=[governor])


def test_a_governor_governs_a_plain_client(enforcer: Enforcer, fake_claude: FakeClaude) -> None:
    claude = plain_client(enforcer, fake_claude, Principal("uma", "user"))
    claude.messages.create(model="claude-haiku-4-5", max_tokens=4000, messages=MESSAGES)
    (sent,) = fake_claude.requests
    assert sent.json["max_tokens"] == 512  # the user role's cap
    assert sent.api_key == KEY  # the workspace's key, set by the governor: the client's own never leaves
    with pytest.raises(AccessDenied):
        claude.messages.create(model="claude-opus-4-7", max_tokens=10, messages=MESSAGES)
    assert fake_claude.count() == 1


def test_a_new_generation_applies_to_a_governor_already_built(enforcer: Enforcer, fake_claude: FakeClaude) -> None:
    claude = plain_client(enforcer, fake_claude, Principal("uma", "user"))
    promoted = Policy.from_dict({"roles": {"user": {"models": ["claude-*"], "max_tokens": 64}}})
    enforcer.install(promoted)
    claude.messages.create(model="claude-opus-4-7", max_tokens=4000, messages=MESSAGES)
    assert fake_claude.requests[-1].json["max_tokens"] == 64
    assert enforcer.generation.number == 2
