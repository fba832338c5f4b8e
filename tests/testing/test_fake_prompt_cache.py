"""FakeClaude's simulated prompt cache: written at each breakpoint's TTL the first time, read afterwards."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from claude_rbac.testing import FakeClaude
from claude_rbac.testing._fake_usage import PromptCache
from tests.testing.sdk import CACHED_SYSTEM, MESSAGES, MODEL, client

BODY: dict[str, Any] = {"model": MODEL, "max_tokens": 5, "system": CACHED_SYSTEM, "messages": MESSAGES}
# CACHED_SYSTEM: 840 characters cached for 1 hour (210 tokens), then 280 for 5 minutes (70 more).


def split(usage: Any) -> tuple[int, int, int, int]:
    creation = usage.cache_creation
    return (
        usage.input_tokens,
        creation.ephemeral_1h_input_tokens,
        creation.ephemeral_5m_input_tokens,
        (usage.cache_read_input_tokens),
    )


def test_first_call_writes_at_each_ttl_then_calls_read(fake_claude: FakeClaude) -> None:
    sdk = client(fake_claude)
    first = sdk.messages.create(**BODY).usage
    assert split(first) == (2, 210, 70, 0)
    assert first.cache_creation_input_tokens == 280
    second = sdk.messages.create(**BODY).usage
    assert split(second) == (2, 0, 0, 280)
    assert second.cache_creation_input_tokens == 0
    assert sdk.messages.count_tokens(model=MODEL, system=CACHED_SYSTEM, messages=MESSAGES).input_tokens == 282


def test_a_growing_conversation_reads_its_earlier_prefix(fake_claude: FakeClaude) -> None:
    def turn(text: str) -> dict[str, Any]:
        return {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}

    sdk = client(fake_claude)
    history: list[Any] = [{"role": "user", "content": [turn("a" * 400)]}]
    assert sdk.messages.create(model=MODEL, max_tokens=5, messages=history).usage.cache_creation_input_tokens == 100
    history = [
        {"role": "user", "content": [{"type": "text", "text": "a" * 400}]},
        {"role": "assistant", "content": "b" * 200},
        {"role": "user", "content": [turn("c" * 200)]},
    ]
    usage = sdk.messages.create(model=MODEL, max_tokens=5, messages=history).usage
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (100, 100)


def test_top_level_cache_control_caches_the_whole_prompt(fake_claude: FakeClaude) -> None:
    body: Any = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 800}]}
    sdk = client(fake_claude)
    top: Any = {"type": "ephemeral", "ttl": "1h"}
    assert split(sdk.messages.create(**body, cache_control=top).usage) == (0, 200, 0, 0)
    assert split(sdk.messages.create(**body, cache_control=top).usage) == (0, 0, 0, 200)
    assert split(sdk.messages.create(**body).usage) == (200, 0, 0, 0)


def test_the_cache_is_per_model(fake_claude: FakeClaude) -> None:
    sdk = client(fake_claude)
    sdk.messages.create(**BODY)
    assert sdk.messages.create(**{**BODY, "model": "claude-haiku-4-5"}).usage.cache_read_input_tokens == 0


def test_entries_expire_after_their_ttl_from_last_use() -> None:
    now = [0.0]
    cache = PromptCache(clock=lambda: now[0])
    short: Any = {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text", "text": "s" * 40}]}]}
    short["messages"][0]["content"][0]["cache_control"] = {"type": "ephemeral"}
    long = {**BODY, "messages": MESSAGES}
    assert cache.use(short, 10).write_5m == 10
    assert cache.use(long, 282).write_1h == 210
    now[0] = 299.0
    assert cache.use(short, 10).read == 10  # the read keeps it alive for another five minutes
    now[0] = 598.0
    assert cache.use(short, 10).read == 10
    now[0] = 899.0
    assert cache.use(short, 10).write_5m == 10
    now[0] = 3599.0
    assert cache.use(long, 282).read == 210  # the 5-minute stretch expired, the 1-hour one lives on


TTLS = st.sampled_from(
    [None, {"type": "ephemeral"}, {"type": "ephemeral", "ttl": "5m"}, {"type": "ephemeral", "ttl": "1h"}]
)
BLOCKS = st.lists(
    st.builds(
        lambda text, cc: {"type": "text", "text": text, **({"cache_control": cc} if cc else {})}, st.text(), TTLS
    ),
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(system=BLOCKS, content=BLOCKS.filter(bool))
def test_every_prompt_token_is_counted_once_and_a_repeat_reads_what_was_written(
    system: list[Any], content: list[Any]
) -> None:
    fake = FakeClaude()  # never started: usage_for needs no server
    try:
        body = {"model": MODEL, "max_tokens": 5, "system": system, "messages": [{"role": "user", "content": content}]}
        first, second = fake.usage_for(body), fake.usage_for(body)
        for usage in (first, second):
            total = usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]
            assert total == fake.input_tokens(body)
            assert usage["cache_creation_input_tokens"] == sum(usage["cache_creation"].values())
        assert first["cache_read_input_tokens"] == 0
        assert (second["cache_read_input_tokens"], second["cache_creation_input_tokens"]) == (
            first["cache_creation_input_tokens"],
            0,
        )
    finally:
        fake.stop()
