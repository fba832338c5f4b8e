"""Governed clients are cloned from a template derivation: each clone acts for its own principal only.

A cache miss clones a private template instead of running ``with_options()``'s constructor (issue #19). The
clone must be what ``with_options()`` would give: the same instance state, its own governor last in the
middleware and in the prebuilt chain, resources bound to its own state, and no mutable option shared with another
client.
"""

from __future__ import annotations

import anthropic
import pytest

from claude_rbac import RBAC, AccessDenied, Policy, Principal, RateLimited
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-client-clone-tests-000000000000000000000000-CLON"
MESSAGES = [{"role": "user", "content": "hi"}]
UMA, ABE = Principal("uma", "user"), Principal("abe", "user")


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_clone_has_the_state_of_a_full_derivation(fake_claude: FakeClaude, asynchronous: bool) -> None:
    with RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url) as rbac:
        make = rbac.async_client if asynchronous else rbac.client
        uma, abe = make(UMA), make(ABE)
        full = anthropic.Anthropic.copy if not asynchronous else anthropic.AsyncAnthropic.copy
        reference = full(uma, middleware=list(uma.middleware))  # the SDK's own constructor, same options
        assert vars(uma).keys() == vars(abe).keys() == vars(reference).keys()
        assert [type(m).__name__ for m in uma.middleware] == ["Governor"]
        assert uma.middleware[-1].binding.principal == UMA and abe.middleware[-1].binding.principal == ABE
        assert uma._middleware_chain is not abe._middleware_chain
        # Resources are bound to the client's engine, which has the client's state (its own __dict__): uma's
        # governor, not abe's nor the template's (see enforcement/_acyclic.py).
        assert vars(uma.messages._client) is vars(uma) and vars(abe.messages._client) is vars(abe)
        assert uma.messages._client.middleware[-1].binding.principal == UMA
        for name, value in vars(uma).items():
            if isinstance(value, dict) and value:
                assert vars(abe)[name] is not value, name  # a mutable option is never shared


def test_clones_count_and_govern_for_their_own_principal(fake_claude: FakeClaude) -> None:
    policy = Policy.from_dict({"roles": {"user": {"models": ["claude-haiku-*"], "max_tokens": 100, "rpm": 1}}})
    with RBAC(policy, api_key=KEY, base_url=fake_claude.url) as rbac:
        for principal in (UMA, ABE):
            rbac.client(principal).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
        with pytest.raises(RateLimited):
            rbac.client(UMA).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
        with pytest.raises(AccessDenied):
            rbac.client(ABE).messages.create(model="claude-opus-4-7", max_tokens=10, messages=MESSAGES)
    assert len(fake_claude.requests) == 2
    assert {request.headers["x-api-key"] for request in fake_claude.requests} == {KEY}


def test_a_thrashing_cache_keeps_only_clients_asked_for_twice(fake_claude: FakeClaude) -> None:
    """More active users than the cache holds: a client used once is not kept (it would only feed the collector's
    oldest generation); a principal seen again is, and is then served from the cache."""
    with RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url) as rbac:
        first = rbac.client(UMA)
        assert rbac.client(UMA) is first  # a cache that hits keeps every client
        for n in range(2 * 1024 + 1):  # two fills without a hit: the cache thrashes
            rbac.client(Principal(f"user-{n}", "user"))
        once, again = rbac.client(ABE), rbac.client(ABE)
        assert once is not again and rbac.client(ABE) is again  # kept on its second sighting
        assert again.middleware[-1].binding.principal == ABE
