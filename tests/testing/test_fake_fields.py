"""FakeClaude accepts and records every request field the installed SDK can send, on every endpoint."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic

from claude_rbac.testing import FakeClaude
from tests.testing.sdk import (
    BETA_TOOLS,
    MCP_SERVERS,
    MESSAGES,
    MODEL,
    TOOLS,
    async_client,
    client,
    every_beta_field,
    every_field,
)


def sent_fields(kwargs: dict[str, Any]) -> dict[str, Any]:
    """What the SDK puts in the JSON body (``workspace_id``, ``user_profile_id`` and ``betas`` travel as headers)."""
    return {k: v for k, v in kwargs.items() if k not in ("workspace_id", "user_profile_id", "betas")}


def test_every_tool_type_of_the_sdk_is_sent() -> None:
    kinds = {tool.get("type", "custom") for tool in BETA_TOOLS}
    for prefix in ("web_search_", "web_fetch_", "code_execution_", "bash_", "text_editor_", "computer_", "memory_"):
        assert any(kind.startswith(prefix) for kind in kinds), prefix
    assert {"custom", "advisor_20260301", "mcp_toolset", "tool_search_tool_bm25_20251119"} <= kinds
    assert len(TOOLS) >= 20


def test_create_accepts_and_records_every_field(fake_claude: FakeClaude) -> None:
    kwargs = every_field()
    message = client(fake_claude).messages.create(**kwargs)
    assert message.content[0].type == "text"
    assert message.container is not None
    assert message.container.id == "container_reused"
    (request,) = fake_claude.calls()
    assert request.json == sent_fields(kwargs)
    assert request.workspace_id == "wrkspc_test"
    assert request.headers["anthropic-user-profile-id"] == "uprof_test"


def test_beta_create_accepts_betas_mcp_servers_and_the_advisor(fake_claude: FakeClaude) -> None:
    kwargs = every_beta_field()
    message = client(fake_claude).beta.messages.create(**kwargs)
    assert message.context_management is not None
    assert message.context_management.applied_edits == []
    (request,) = fake_claude.calls()
    assert request.json == sent_fields(kwargs)
    assert request.json["mcp_servers"] == MCP_SERVERS
    assert request.betas == ["advisor-tool-2026-03-01", "mcp-client-2025-04-04", "context-management-2025-06-27"]
    assert request.workspace_id == "wrkspc_test"
    advisor = next(tool for tool in request.json["tools"] if tool.get("type") == "advisor_20260301")
    assert (advisor["model"], advisor["max_tokens"]) == ("claude-opus-4-7", 300)


def test_streams_accept_every_field_sync_and_async(fake_claude: FakeClaude) -> None:
    kwargs = every_field()
    with client(fake_claude).messages.stream(**kwargs) as stream:
        assert stream.get_final_text()

    async def beta_stream() -> str:
        async with async_client(fake_claude) as sdk, sdk.beta.messages.stream(**every_beta_field()) as stream:
            return await stream.get_final_text()

    assert asyncio.run(beta_stream())
    plain, beta = fake_claude.calls()
    assert plain.json == {**sent_fields(kwargs), "stream": True}
    assert beta.json == {**sent_fields(every_beta_field()), "stream": True}
    assert beta.betas[0] == "advisor-tool-2026-03-01"


def test_count_tokens_takes_tools_and_counts_them(fake_claude: FakeClaude) -> None:
    sdk = client(fake_claude)
    bare = sdk.messages.count_tokens(model=MODEL, messages=MESSAGES).input_tokens
    with_tools = sdk.messages.count_tokens(model=MODEL, messages=MESSAGES, tools=TOOLS, system="Be brief.")
    beta = sdk.beta.messages.count_tokens(model=MODEL, messages=MESSAGES, tools=BETA_TOOLS, betas=["x-2026-01-01"])
    assert bare < with_tools.input_tokens < beta.input_tokens
    assert [r.json.get("tools") for r in fake_claude.calls("/v1/messages/count_tokens")] == [None, TOOLS, BETA_TOOLS]


def test_batch_items_keep_every_field(fake_claude: FakeClaude) -> None:
    params: Any = sent_fields(every_field())
    sdk = client(fake_claude)
    batch = sdk.messages.batches.create(requests=[{"custom_id": "all", "params": params}])
    (item,) = list(sdk.messages.batches.results(batch.id))
    assert item.result.type == "succeeded"
    assert fake_claude.calls("/v1/messages/batches")[0].json["requests"][0]["params"] == params


def test_async_client_create(fake_claude: FakeClaude) -> None:
    async def main() -> Any:
        async with async_client(fake_claude) as sdk:
            return await sdk.messages.create(**every_field())

    message = asyncio.run(main())
    assert message.usage.inference_geo == "us"
    assert message.usage.speed == "fast"
    assert fake_claude.count() == 1


def test_garbage_is_recorded_not_refused(fake_claude: FakeClaude) -> None:
    body: dict[str, Any] = {"model": MODEL, "max_tokens": "many", "messages": "hi", "tools": ["x", 3], "system": 7}
    message = client(fake_claude).post("/v1/messages", body=body, cast_to=anthropic.types.Message)
    assert message.usage.output_tokens == 1
    assert fake_claude.requests[0].json == body
