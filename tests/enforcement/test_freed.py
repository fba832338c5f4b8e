"""A governed client the app drops is freed at once, by reference counting, with the collector off (issue #19).

With more active users than the client cache holds, each request gets a client of its own and drops it: a client
in a reference cycle (its middleware chain, its resources, its governor and limiter) would wait for the garbage
collector, whose collections then come several times as often. Each test here turns the collector off, gets a
client through the public API, makes a real call to FakeClaude, drops the client and checks it is gone.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from claude_rbac import RBAC, Policy, Principal
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-test-key-for-the-freed-client-tests-0000000-abcd"
MESSAGES = [{"role": "user", "content": "Hello there"}]
HAIKU = "claude-haiku-4-5"
CACHE_SIZE = 1024


@pytest.fixture
def rbac(fake_claude: FakeClaude) -> Iterator[RBAC]:
    with RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url) as rbac:
        yield rbac


@contextmanager
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def thrash(get: Callable[[Principal], Any]) -> None:
    """Fill the client cache with users seen once: from then on, a user seen for the first time gets a client the
    cache does not keep (the 100,000-active-users case), which the app drops after its request."""
    for number in range(CACHE_SIZE + 1):
        get(Principal(f"once-{number}", "user"))


def freed(ref: weakref.ref[Any]) -> bool:
    return ref() is None


def test_a_client_the_cache_does_not_keep_is_freed_after_a_call(rbac: RBAC, fake_claude: FakeClaude) -> None:
    thrash(rbac.client)
    with no_collector():
        client = rbac.client(Principal("new", "user"))
        assert isinstance(client, anthropic.Anthropic)
        client.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)
        with client.messages.stream(model=HAIKU, max_tokens=10, messages=MESSAGES) as stream:
            assert stream.get_final_text().startswith("Hello")
        client.messages.count_tokens(model=HAIKU, messages=MESSAGES)
        refs = [weakref.ref(client), weakref.ref(client.messages), weakref.ref(client.beta.messages)]
        del client, stream
        assert [freed(ref) for ref in refs] == [True, True, True]
    assert (fake_claude.count(), fake_claude.count("/v1/messages/count_tokens")) == (2, 1)


def test_a_with_options_client_is_freed_and_its_parent_kept(rbac: RBAC, fake_claude: FakeClaude) -> None:
    parent = rbac.client(Principal("alice", "user"))
    with no_collector():
        derived = parent.with_options(max_retries=0)
        derived.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)
        copied = derived.copy(timeout=30)
        copied.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)
        refs = [weakref.ref(derived), weakref.ref(copied)]
        del derived, copied
        assert [freed(ref) for ref in refs] == [True, True]
    parent.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)
    assert fake_claude.count() == 3


def test_a_traced_call_builds_its_own_chain_and_the_client_is_still_freed(
    rbac: RBAC, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter
) -> None:
    thrash(rbac.client)
    with no_collector():
        client = rbac.client(Principal("traced", "user"))
        client.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)
        ref = weakref.ref(client)
        del client
        assert freed(ref)
    assert any(
        span.attributes and span.attributes.get("claude_rbac.decision") for span in span_exporter.get_finished_spans()
    )
    assert fake_claude.count() == 1


def test_an_async_client_the_cache_does_not_keep_is_freed_after_a_call(rbac: RBAC, fake_claude: FakeClaude) -> None:
    async def main() -> list[bool]:
        thrash(rbac.async_client)
        with no_collector():
            client = rbac.async_client(Principal("new", "user"))
            assert isinstance(client, anthropic.AsyncAnthropic)
            await client.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)
            async with client.messages.stream(model=HAIKU, max_tokens=10, messages=MESSAGES) as stream:
                assert (await stream.get_final_text()).startswith("Hello")
            derived = client.with_options(max_retries=0)
            await derived.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)
            refs = [weakref.ref(client), weakref.ref(client.messages), weakref.ref(derived)]
            del client, derived, stream
            result = [freed(ref) for ref in refs]
        await rbac.aclose()
        return result

    assert asyncio.run(main()) == [True, True, True]
    assert fake_claude.count() == 3


class TestTheResourcesStayTheSDKs:
    """What the cycle-free layout must not change: one resource per client, which outlives a dropped client."""

    def test_a_resource_kept_after_its_client_is_dropped_still_calls(self, rbac: RBAC, fake_claude: FakeClaude) -> None:
        thrash(rbac.client)
        create = rbac.client(Principal("new", "user")).messages.create
        batches = rbac.client(Principal("other", "user")).messages.batches
        gc.collect()
        create(model=HAIKU, max_tokens=10, messages=MESSAGES)
        assert fake_claude.count() == 1
        assert isinstance(batches._client, anthropic.Anthropic)

    def test_one_resource_per_client_settable_and_deletable(self, rbac: RBAC) -> None:
        client = rbac.client(Principal("alice", "user"))
        messages = client.messages
        assert client.messages is messages
        assert client.messages.batches is messages.batches
        assert client.with_raw_response.messages is client.with_raw_response.messages
        client.messages = "replaced"  # type: ignore[assignment]
        assert client.messages == "replaced"
        del client.messages
        assert isinstance(client.messages, anthropic.resources.Messages)
        assert client.messages is not messages
        with pytest.raises(AttributeError, match="no attribute 'nope'"):
            client.nope  # type: ignore[attr-defined]  # noqa: B018

    def test_a_resources_client_is_the_clients_state(self, rbac: RBAC) -> None:
        client = rbac.client(Principal("alice", "user"))
        engine = client.messages._client
        assert type(engine) is type(client)
        assert vars(engine) is vars(client)
        client.max_retries = 7
        assert engine.max_retries == 7
