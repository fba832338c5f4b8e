"""The tenant header cannot be stripped or replaced by the caller (issue #14, item 6).

With ``allowed_org_ids`` in the policy, every request carries ``anthropic-allowed-org-ids`` with the
policy's value. The attacks: ``extra_headers`` with ``Omit()`` (strip it) or another organisation (widen
it), in any letter case; ``with_options(default_headers=...)``; and ``create(**body)`` splatted from JSON a
client sent (``extra_headers`` inside). Each is refused with ``tenant_restriction_violation`` before
anything is sent, or, where the SDK's own ``copy`` slips a default header past the governed client, the
header FakeClaude receives is still the policy's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from anthropic import Omit

from claude_rbac import RBAC, AccessDenied, Principal
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-tenant-header-tests-00000000000000000000000-TNNT"
HEADER = "anthropic-allowed-org-ids"
ORG = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"
HAIKU = "claude-haiku-4-5"
MESSAGES = [{"role": "user", "content": "hi"}]
UMA = Principal("uma", "user")
POLICY = {"version": 1, "allowed_org_ids": [ORG], "roles": {"user": {"models": ["claude-haiku-*"], "max_tokens": 512}}}


@pytest.fixture
def fake() -> Iterator[FakeClaude]:
    """A FakeClaude for the organisation ORG: it answers 403 to a request whose header excludes it."""
    with FakeClaude(org_id=ORG) as started:
        yield started


@pytest.fixture(params=["enforce", "shadow"])
def rbac(request: pytest.FixtureRequest, fake: FakeClaude) -> Iterator[RBAC]:
    with RBAC(POLICY, api_key=KEY, base_url=fake.url, mode=request.param) as built:
        yield built


def create(client: anthropic.Anthropic, **extra: Any) -> anthropic.types.Message:
    return client.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES, **extra)


def test_every_request_carries_the_policys_header(rbac: RBAC, fake: FakeClaude) -> None:
    create(rbac.client(UMA))
    create(rbac.client(UMA), extra_headers={HEADER: ORG})  # the same value is no change
    assert [request.headers[HEADER] for request in fake.requests] == [ORG, ORG]


@pytest.mark.parametrize(
    "headers",
    [{HEADER: Omit()}, {HEADER: OTHER}, {HEADER: f"{ORG},{OTHER}"}, {"Anthropic-Allowed-Org-Ids": OTHER}, {HEADER: ""}],
    ids=["omitted", "another org", "one more org", "letter case", "empty"],
)
def test_a_request_may_not_change_it(rbac: RBAC, fake: FakeClaude, headers: dict[str, Any]) -> None:
    with pytest.raises(AccessDenied) as info:
        create(rbac.client(UMA), extra_headers=headers)
    assert info.value.reason == "tenant_restriction_violation"
    assert fake.requests == []


def test_a_derived_client_may_not_change_it(rbac: RBAC, fake: FakeClaude) -> None:
    for headers in ({HEADER: OTHER}, {HEADER.upper(): OTHER}):
        with pytest.raises(AccessDenied) as info:
            rbac.client(UMA).with_options(default_headers=headers)
        assert info.value.reason == "tenant_restriction_violation"
        with pytest.raises(AccessDenied):
            rbac.client(UMA).copy(set_default_headers=headers)
    # Past the governed override, through the SDK's own copy: the governor still sends the policy's value.
    for value in (OTHER, Omit()):
        sneaky = anthropic.Anthropic.copy(rbac.client(UMA), default_headers={HEADER: value})
        create(sneaky)
    assert [request.headers.get(HEADER) for request in fake.requests] == [ORG, ORG]


def test_a_body_splatted_from_client_json_cannot_carry_it(rbac: RBAC, fake: FakeClaude) -> None:
    """An app that does ``create(**request.json())``: the client's JSON reaches the SDK's keyword arguments."""
    sent_by_the_browser = json.loads(
        json.dumps(
            {
                "model": HAIKU,
                "max_tokens": 10,
                "messages": MESSAGES,
                "extra_headers": {HEADER: OTHER},
                "extra_query": {"beta": "true"},
            }
        )
    )
    with pytest.raises(AccessDenied) as info:
        rbac.client(UMA).messages.create(**sent_by_the_browser)
    assert info.value.reason == "tenant_restriction_violation"
    assert fake.requests == []


def test_async_clients_hold_the_same_line(fake: FakeClaude) -> None:
    rbac = RBAC(POLICY, api_key=KEY, base_url=fake.url)

    async def main() -> None:
        client = rbac.async_client(UMA)
        for headers in ({HEADER: Omit()}, {HEADER: OTHER}):
            with pytest.raises(AccessDenied) as info:
                await client.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES, extra_headers=headers)
            assert info.value.reason == "tenant_restriction_violation"
        with pytest.raises(AccessDenied):
            client.with_options(default_headers={HEADER: OTHER})
        await anthropic.AsyncAnthropic.copy(client, default_headers={HEADER: OTHER}).messages.create(
            model=HAIKU, max_tokens=10, messages=MESSAGES
        )
        await rbac.aclose()

    asyncio.run(main())
    assert [request.headers.get(HEADER) for request in fake.requests] == [ORG]
