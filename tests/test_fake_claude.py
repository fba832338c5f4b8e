"""FakeClaude speaks the Messages API well enough for the real SDK, and records what it got."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from claude_rbac.testing import FakeClaude

MESSAGES = [{"role": "user", "content": "Hello"}]


def client(fake: FakeClaude, **kwargs: object) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-test", base_url=fake.url, **kwargs)  # type: ignore[arg-type]


def test_json_message(fake_claude: FakeClaude) -> None:
    message = client(fake_claude).messages.create(model="claude-haiku-4-5", max_tokens=3, messages=MESSAGES)
    assert message.model == "claude-haiku-4-5"
    assert message.usage.output_tokens == 3
    assert message.stop_reason == "max_tokens"
    assert fake_claude.requests[0].json["messages"] == MESSAGES
    assert fake_claude.requests[0].api_key == "sk-ant-test"


def test_sse_event_order_and_usage(fake_claude: FakeClaude) -> None:
    with httpx.stream(
        "POST",
        f"{fake_claude.url}/v1/messages",
        json={"model": "m", "max_tokens": 5, "stream": True, "messages": MESSAGES},
    ) as response:
        body = response.read().decode()
    events = [block.split("\n")[0].removeprefix("event: ") for block in body.strip().split("\n\n")]
    assert events[:3] == ["message_start", "content_block_start", "ping"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(events[3:-3]) == {"content_block_delta"}
    delta = json.loads(body.strip().split("\n\n")[-2].split("data: ", 1)[1])
    assert delta["usage"] == {"output_tokens": 5}


def test_the_sdk_stream_helper(fake_claude: FakeClaude) -> None:
    with client(fake_claude).messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES) as stream:
        assert stream.get_final_text() == "Hello from FakeClaude, a local stand-in for the Messages API."


def test_count_tokens_and_batches(fake_claude: FakeClaude) -> None:
    sdk = client(fake_claude)
    assert sdk.messages.count_tokens(model="claude-haiku-4-5", messages=MESSAGES).input_tokens == 2
    params = {"model": "claude-haiku-4-5", "max_tokens": 2, "messages": MESSAGES}
    batch = sdk.messages.batches.create(requests=[{"custom_id": "one", "params": params}])  # type: ignore[list-item]
    assert sdk.messages.batches.retrieve(batch.id).processing_status == "ended"
    (result,) = list(sdk.messages.batches.results(batch.id))
    assert result.custom_id == "one"
    assert result.result.type == "succeeded"
    assert [b.id for b in sdk.messages.batches.list()] == [batch.id]
    assert sdk.messages.batches.cancel(batch.id).processing_status == "canceling"


def test_scripted_errors_reach_the_sdk_as_its_own(fake_claude: FakeClaude) -> None:
    fake_claude.script_error(529, "overloaded_error", "Overloaded")
    with pytest.raises(anthropic.InternalServerError) as info:
        client(fake_claude, max_retries=0).messages.create(model="claude-haiku-4-5", max_tokens=3, messages=MESSAGES)
    assert info.value.status_code == 529
    client(fake_claude, max_retries=0).messages.create(model="claude-haiku-4-5", max_tokens=3, messages=MESSAGES)


def test_tenant_restriction(fake_claude: FakeClaude) -> None:
    restricted = FakeClaude(org_id="11111111-1111-1111-1111-111111111111").start()
    try:
        sdk = client(
            restricted,
            max_retries=0,
            default_headers={"anthropic-allowed-org-ids": "22222222-2222-2222-2222-222222222222"},
        )
        with pytest.raises(anthropic.PermissionDeniedError) as info:
            sdk.messages.create(model="claude-haiku-4-5", max_tokens=3, messages=MESSAGES)
        assert info.value.body == {
            "type": "error",
            "error": {
                "type": "permission_error",
                "message": "Access restricted by network policy. Contact IT Administrator.",
                "error_code": "tenant_restriction_violation",
            },
        }
    finally:
        restricted.stop()


def test_unknown_endpoints_are_404(fake_claude: FakeClaude) -> None:
    response = httpx.get(f"{fake_claude.url}/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
