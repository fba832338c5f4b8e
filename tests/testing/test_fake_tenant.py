"""FakeClaude's tenant restriction is claude_rbac.tenant's rule, answering with its body."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from claude_rbac.tenant import TENANT_ERROR
from claude_rbac.testing import FakeClaude
from tests.testing.sdk import MESSAGES, MODEL, client

ORG = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"


@pytest.fixture
def restricted() -> Iterator[FakeClaude]:
    with FakeClaude(org_id=ORG) as fake:
        yield fake


@pytest.mark.parametrize("header", [OTHER, f"{OTHER},not-a-uuid", "", ORG.upper() + "x"])
def test_a_header_without_our_org_is_refused_with_the_tenant_body(restricted: FakeClaude, header: str) -> None:
    sdk = client(restricted, default_headers={"anthropic-allowed-org-ids": header})
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        sdk.messages.create(model=MODEL, max_tokens=3, messages=MESSAGES)
    assert info.value.body == TENANT_ERROR
    assert restricted.tenant_error({"anthropic-allowed-org-ids": header}) == TENANT_ERROR
    assert restricted.count() == 1  # recorded all the same


@pytest.mark.parametrize("header", [None, ORG, f"{OTHER}, {ORG}", ORG.upper()])
def test_our_org_or_no_header_goes_through(restricted: FakeClaude, header: str | None) -> None:
    headers = {} if header is None else {"anthropic-allowed-org-ids": header}
    message = client(restricted, default_headers=headers).messages.create(model=MODEL, max_tokens=3, messages=MESSAGES)
    assert message.usage.output_tokens == 3
    assert restricted.tenant_allows(headers)


def test_without_an_org_id_nothing_is_checked(fake_claude: FakeClaude) -> None:
    sdk = client(fake_claude, default_headers={"anthropic-allowed-org-ids": "anything"})
    assert sdk.messages.create(model=MODEL, max_tokens=3, messages=MESSAGES).usage.output_tokens == 3


def test_a_refused_call_consumes_no_scripted_usage(restricted: FakeClaude) -> None:
    restricted.script_usage({"input_tokens": 42})
    with pytest.raises(anthropic.PermissionDeniedError):
        client(restricted, default_headers={"anthropic-allowed-org-ids": OTHER}).messages.create(
            model=MODEL, max_tokens=3, messages=MESSAGES
        )
    assert client(restricted).messages.create(model=MODEL, max_tokens=3, messages=MESSAGES).usage.input_tokens == 42
