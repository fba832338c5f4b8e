"""Requests that carry every field the installed anthropic SDK can send, built from its own types."""

from __future__ import annotations

import typing
from typing import Any

import anthropic
import typing_extensions
from anthropic.types import ToolUnionParam
from anthropic.types.beta import BetaToolUnionParam

from claude_rbac.testing import FakeClaude

MODEL = "claude-sonnet-4-6"
MESSAGES: list[Any] = [{"role": "user", "content": "Hello"}]
_VALUES: dict[str, Any] = {
    "name": "lookup",
    "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    "model": "claude-opus-4-7",
    "mcp_server_name": "docs",
    "display_width_px": 1024,
    "display_height_px": 768,
}


def _required(cls: type) -> dict[str, Any]:
    tool: dict[str, Any] = {}
    for key, hint in typing_extensions.get_type_hints(cls, include_extras=True).items():
        if typing_extensions.get_origin(hint) is not typing_extensions.Required:
            continue
        (inner,) = typing_extensions.get_args(hint)
        literal = typing_extensions.get_origin(inner) is typing_extensions.Literal
        tool[key] = typing_extensions.get_args(inner)[0] if literal else _VALUES[key]
    return tool


def every_tool(union: Any) -> list[dict[str, Any]]:
    """One minimal definition of each tool type in an SDK tool union (client tools have no ``type``)."""
    return [_required(cls) for cls in typing.get_args(union)]


TOOLS: Any = every_tool(ToolUnionParam)
BETA_TOOLS: Any = [
    {**tool, "max_tokens": 300} if tool.get("type", "").startswith("advisor_") else tool
    for tool in every_tool(BetaToolUnionParam)
]
CACHED_SYSTEM: list[Any] = [
    {"type": "text", "text": "Stable instructions. " * 40, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    {"type": "text", "text": "More of them. " * 20, "cache_control": {"type": "ephemeral"}},
]
MCP_SERVERS: list[Any] = [
    {"type": "url", "name": "docs", "url": "https://mcp.example.com/sse", "authorization_token": "mcp-token"}
]


_OPEN: list[anthropic.Anthropic] = []


def client(fake: FakeClaude, **kwargs: Any) -> anthropic.Anthropic:
    """A sync client for ``fake``, closed after the test (``conftest.py``)."""
    sdk = anthropic.Anthropic(api_key="sk-ant-test", base_url=fake.url, max_retries=0, **kwargs)
    _OPEN.append(sdk)
    return sdk


def close_clients() -> None:
    while _OPEN:
        _OPEN.pop().close()


def async_client(fake: FakeClaude, **kwargs: Any) -> anthropic.AsyncAnthropic:
    """An async client for ``fake``: use it as ``async with`` so it closes on its own loop."""
    return anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=fake.url, max_retries=0, **kwargs)


def every_field() -> dict[str, Any]:
    """Keyword arguments for ``messages.create``/``stream`` with every optional field of the GA API set."""
    return {
        "model": MODEL,
        "max_tokens": 64,
        "messages": MESSAGES,
        "system": CACHED_SYSTEM,
        "tools": TOOLS,
        "tool_choice": {"type": "auto"},
        "cache_control": {"type": "ephemeral", "ttl": "5m"},
        "container": "container_reused",
        "inference_geo": "us",
        "metadata": {"user_id": "user-1"},
        "service_tier": "auto",
        "speed": "fast",
        "stop_sequences": ["STOP"],
        "thinking": {"type": "adaptive"},
        "workspace_id": "wrkspc_test",
        "user_profile_id": "uprof_test",
    }


def every_beta_field() -> dict[str, Any]:
    """The same for ``beta.messages.create``, with the beta-only fields and ``betas``."""
    fields = {key: value for key, value in every_field().items() if key != "user_profile_id"}
    return {
        **fields,
        "tools": BETA_TOOLS,
        "mcp_servers": MCP_SERVERS,
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "container": {"id": "container_reused"},
        "betas": ["advisor-tool-2026-03-01", "mcp-client-2025-04-04", "context-management-2025-06-27"],
    }
