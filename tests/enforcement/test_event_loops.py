"""Async governed clients used from one event loop after another (Django's async views under WSGI run every
request in a loop of its own): each loop gets an HTTP pool of its own, closed when that loop ends."""

from __future__ import annotations

import asyncio
import gc
import warnings

from claude_rbac import RBAC, Policy, Principal
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-event-loops-00000000000000000000000000000000-LOOP"
MESSAGES = [{"role": "user", "content": "hi"}]


def test_one_loop_after_another_leaves_no_socket_open(fake_claude: FakeClaude) -> None:
    rbac = RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url)

    async def one_request() -> int:
        claude = rbac.async_client(Principal("uma", "user"))
        message = await claude.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
        return message.usage.output_tokens

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        answers = [asyncio.run(one_request()) for _ in range(3)]
        gc.collect()
    assert answers == [5, 5, 5]
    assert fake_claude.count() == 3
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    rbac.close()


def test_within_one_loop_the_client_is_the_same(fake_claude: FakeClaude) -> None:
    rbac = RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url)

    async def twice() -> bool:
        alice = Principal("alice", "user")
        same = rbac.async_client(alice) is rbac.async_client(alice)
        await rbac.aclose()
        return same

    assert asyncio.run(twice())
