"""FakeClaude answers with the API's usage shape: plausible by default, exactly what a test scripts otherwise."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from claude_rbac.testing import FakeClaude
from tests.testing.sdk import CACHED_SYSTEM, MESSAGES, MODEL, async_client, client

FULL_USAGE: dict[str, Any] = {
    "input_tokens": 120,
    "output_tokens": 7,
    "cache_creation_input_tokens": 300,
    "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
    "cache_read_input_tokens": 4000,
    "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 2},
    "service_tier": "priority",
    "inference_geo": "us",
    "speed": "fast",
    "output_tokens_details": {"thinking_tokens": 4},
}
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}
WEB_FETCH = {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 2}


def create(fake: FakeClaude, **kwargs: Any) -> Any:
    return client(fake).messages.create(**{"model": MODEL, "max_tokens": 50, "messages": MESSAGES, **kwargs})


def raw_events(fake: FakeClaude, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The SSE events of a stream, by name (the last of each)."""
    with httpx.stream("POST", f"{fake.url}/v1/messages", json={**body, "stream": True}) as response:
        text = response.read().decode()
    events = {}
    for block in text.strip().split("\n\n"):
        name, data = (line.split(": ", 1)[1] for line in block.split("\n"))
        events[name] = json.loads(data)
    return events


def test_a_scripted_usage_comes_back_exactly_then_the_queue_moves_on(fake_claude: FakeClaude) -> None:
    fake_claude.script_usage(FULL_USAGE)
    fake_claude.script_usage({"input_tokens": 9}, times=2)
    first = create(fake_claude).usage
    assert first.model_dump(exclude_none=True) == FULL_USAGE
    assert first.cache_creation is not None
    assert first.cache_creation.ephemeral_1h_input_tokens == 200
    assert first.server_tool_use is not None
    assert first.server_tool_use.web_fetch_requests == 2
    assert [create(fake_claude).usage.input_tokens for _ in range(3)] == [9, 9, 2]


def test_a_scripted_stream_splits_its_usage_like_the_api(fake_claude: FakeClaude) -> None:
    fake_claude.script_usage(FULL_USAGE)
    events = raw_events(fake_claude, {"model": MODEL, "max_tokens": 50, "messages": MESSAGES})
    start, delta = events["message_start"]["message"]["usage"], events["message_delta"]["usage"]
    assert start == {
        **{k: FULL_USAGE[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")},
        **{k: FULL_USAGE[k] for k in ("cache_creation", "service_tier", "inference_geo", "speed")},
        "output_tokens": 1,
    }
    assert delta == {
        k: FULL_USAGE[k]
        for k in (
            "output_tokens",
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "server_tool_use",
            "output_tokens_details",
        )
    }


def test_the_sdk_final_message_reports_the_scripted_usage_sync_and_async(fake_claude: FakeClaude) -> None:
    fake_claude.script_usage(FULL_USAGE, times=2)
    with client(fake_claude).messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES) as stream:
        sync_usage = stream.get_final_message().usage

    async def main() -> Any:
        async with (
            async_client(fake_claude) as sdk,
            sdk.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES) as stream,
        ):
            return (await stream.get_final_message()).usage

    assert sync_usage.model_dump(exclude_none=True) == FULL_USAGE
    assert asyncio.run(main()).model_dump(exclude_none=True) == FULL_USAGE


def test_the_final_message_delta_is_what_get_final_message_reports(fake_claude: FakeClaude) -> None:
    body: Any = {"model": MODEL, "max_tokens": 30, "messages": MESSAGES, "system": CACHED_SYSTEM, "tools": [WEB_SEARCH]}
    events = raw_events(fake_claude, body)  # writes the cache, so the SDK's stream below reads it
    written = events["message_delta"]["usage"]["cache_creation_input_tokens"]
    with client(fake_claude).messages.stream(**body) as stream:
        (delta,) = [event.usage.model_dump(exclude_none=True) for event in stream if event.type == "message_delta"]
        final = stream.get_final_message().usage
    assert written > 0
    assert set(delta) == {
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "server_tool_use",
    }
    assert final.model_dump(include=set(delta)) == delta
    assert (final.cache_read_input_tokens, final.cache_creation_input_tokens) == (written, 0)
    assert final.server_tool_use is not None
    assert final.server_tool_use.web_search_requests == 1
    assert final.output_tokens == 10


def test_a_plain_stream_delta_carries_output_tokens_only(fake_claude: FakeClaude) -> None:
    events = raw_events(fake_claude, {"model": MODEL, "max_tokens": 4, "messages": MESSAGES})
    assert events["message_delta"]["usage"] == {"output_tokens": 4}
    assert events["message_start"]["message"]["usage"] == {
        "input_tokens": 2,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 1,
        "service_tier": "standard",
        "inference_geo": "global",
    }


def test_batch_items_carry_their_own_usage_by_custom_id_and_the_batch_tier(fake_claude: FakeClaude) -> None:
    fake_claude.script_usage({"input_tokens": 11}, custom_id="b")
    fake_claude.script_usage({"input_tokens": 22})
    params: Any = {"model": MODEL, "max_tokens": 3, "messages": MESSAGES}
    sdk = client(fake_claude)
    batch = sdk.messages.batches.create(requests=[{"custom_id": cid, "params": params} for cid in ("a", "b", "c")])
    results = {r.custom_id: r.result for r in sdk.messages.batches.results(batch.id)}
    usages = {cid: result.message.usage for cid, result in results.items() if result.type == "succeeded"}
    assert {cid: u.input_tokens for cid, u in usages.items()} == {"a": 22, "b": 11, "c": 2}
    assert {u.service_tier for u in usages.values()} == {"batch"}
    again = [r.result for r in sdk.messages.batches.results(batch.id)]
    assert [r.message.id for r in again if r.type == "succeeded"] == [
        r.message.id for r in results.values() if r.type == "succeeded"
    ]


def test_usage_callable_gets_the_request_and_a_script_wins_over_it() -> None:
    seen: list[dict[str, Any]] = []

    def usage(body: Any) -> dict[str, Any] | None:
        seen.append(body)
        return {"cache_read_input_tokens": 1000} if body["max_tokens"] > 10 else None

    with FakeClaude(usage=usage) as fake:
        fake.script_usage({"cache_read_input_tokens": 5})
        assert create(fake).usage.cache_read_input_tokens == 5
        assert create(fake).usage.cache_read_input_tokens == 1000
        assert create(fake, max_tokens=3).usage.cache_read_input_tokens == 0
    assert [body["max_tokens"] for body in seen] == [50, 3]


def test_a_usage_mapping_applies_to_every_answer_and_none_drops_a_key() -> None:
    with FakeClaude(usage={"inference_geo": None, "cache_creation_input_tokens": 64}) as fake:
        for _ in range(2):
            usage = create(fake).usage
            assert usage.inference_geo is None
            assert usage.cache_creation is not None
            assert (usage.cache_creation_input_tokens, usage.cache_creation.ephemeral_5m_input_tokens) == (64, 64)


def test_a_cache_breakdown_alone_sets_the_total(fake_claude: FakeClaude) -> None:
    fake_claude.script_usage({"cache_creation": {"ephemeral_1h_input_tokens": 40}})
    usage = create(fake_claude).usage
    assert usage.cache_creation_input_tokens == 40
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_5m_input_tokens == 0


@pytest.mark.parametrize(
    ("tools", "search", "fetch"),
    [
        ([WEB_SEARCH], 1, 0),
        ([WEB_FETCH], 0, 1),
        ([WEB_SEARCH, WEB_FETCH], 1, 1),
        ([{**WEB_SEARCH, "max_uses": 0}], 0, 0),
    ],
)
def test_server_tools_count_their_requests(fake_claude: FakeClaude, tools: list[Any], search: int, fetch: int) -> None:
    usage = create(fake_claude, tools=tools).usage
    counts = usage.server_tool_use
    got = (counts.web_search_requests, counts.web_fetch_requests) if counts else (0, 0)
    assert got == (search, fetch)


def test_no_server_tool_no_server_tool_use(fake_claude: FakeClaude) -> None:
    tool = {"name": "lookup", "input_schema": {"type": "object"}}
    assert create(fake_claude, tools=[tool]).usage.server_tool_use is None


def test_service_tiers() -> None:
    with FakeClaude() as standard, FakeClaude(priority=True) as priority:
        assert create(standard, service_tier="auto").usage.service_tier == "standard"
        assert create(priority).usage.service_tier == "priority"
        assert create(priority, service_tier="auto").usage.service_tier == "priority"
        assert create(priority, service_tier="standard_only").usage.service_tier == "standard"


def test_output_tokens_are_capped_by_max_tokens(fake_claude: FakeClaude) -> None:
    assert create(fake_claude, max_tokens=4).usage.output_tokens == 4
    warm = create(fake_claude, max_tokens=0)
    assert (warm.usage.output_tokens, warm.stop_reason) == (0, "max_tokens")
    fake_claude.output_tokens = 3
    message = create(fake_claude)
    assert (message.usage.output_tokens, message.stop_reason) == (3, "end_turn")


def test_the_advisor_reports_its_own_iteration(fake_claude: FakeClaude) -> None:
    advisor: Any = {"type": "advisor_20260301", "name": "advisor", "model": "claude-opus-4-7", "max_tokens": 250}
    message = client(fake_claude).beta.messages.create(
        model="claude-haiku-4-5", max_tokens=20, messages=MESSAGES, tools=[advisor], betas=["advisor-tool-2026-03-01"]
    )
    assert message.usage.iterations is not None
    executor, consulted = message.usage.iterations
    assert (executor.type, executor.input_tokens, executor.output_tokens) == ("message", message.usage.input_tokens, 10)
    assert consulted.type == "advisor_message"
    assert (consulted.model, consulted.output_tokens) == ("claude-opus-4-7", 250)


def test_fixed_cache_figures_are_added_on_every_answer() -> None:
    with FakeClaude(cache_creation_input_tokens=30, cache_read_input_tokens=70) as fake:
        for _ in range(2):
            usage = create(fake, system=CACHED_SYSTEM).usage
            assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (30, 70)
            assert usage.input_tokens == fake.input_tokens({"system": CACHED_SYSTEM, "messages": MESSAGES})


def test_reset_forgets_scripts_and_the_cache(fake_claude: FakeClaude) -> None:
    fake_claude.script_usage({"input_tokens": 99})
    create(fake_claude, system=CACHED_SYSTEM)
    fake_claude.script_usage({"input_tokens": 99}, custom_id="x")
    fake_claude.reset()
    usage = create(fake_claude, system=CACHED_SYSTEM).usage
    assert usage.input_tokens != 99
    assert usage.cache_read_input_tokens == 0
    assert usage.cache_creation_input_tokens > 0
