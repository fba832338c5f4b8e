"""Fail closed: a principal loader, a storage, a key source or a policy reload that raises or hangs denies.

Each part breaks on its own; the result is a deny or a 503 within bounded time, and FakeClaude
receives nothing. (Per integration: test_fail_closed_integrations.py, test_route_walk.py and
test_forged_inputs.py.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from claude_rbac import RBAC, BackendUnavailable, NotAuthenticated, Policy, PolicyError, Principal
from claude_rbac.integrations import aload_principal, load_principal
from claude_rbac.testing import FakeClaude
from tests.support.redis import RedisServer
from tests.support.tcp_proxy import TcpProxy

KEY = "sk-ant-api03-fail-closed-tests-00000000000000000000000000-FAIL"
MESSAGES = [{"role": "user", "content": "hi"}]
ALICE = Principal("alice", "user")


def call(rbac: RBAC, principal: Principal | None = ALICE) -> None:
    rbac.client(principal).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)


class TestPrincipalLoader:
    def test_a_raising_loader_is_unauthenticated(self) -> None:
        def broken(request: object) -> Principal:
            raise RuntimeError("session store down")

        with pytest.raises(NotAuthenticated):
            load_principal(broken, object())

    def test_a_loader_returning_junk_is_unauthenticated(self) -> None:
        for junk in ("admin", {"role": "admin"}, ("alice", "admin")):
            with pytest.raises(NotAuthenticated):
                load_principal(lambda request, junk=junk: junk, object())

    def test_async_loaders(self) -> None:
        async def broken(request: object) -> Principal:
            raise RuntimeError("boom")

        async def main() -> None:
            with pytest.raises(NotAuthenticated):
                await aload_principal(broken, object())
            assert await aload_principal(lambda request: ALICE, object()) == ALICE

        asyncio.run(main())


class TestStorage:
    def test_raising_and_hanging_storage(self, fake_claude: FakeClaude) -> None:
        with RedisServer() as server, TcpProxy("127.0.0.1", server.port) as proxy:
            rbac = RBAC(Policy.default(), storage=proxy.url(), api_key=KEY, base_url=fake_claude.url)
            proxy.hang()
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                call(rbac)
            assert time.monotonic() - started < 1.0
            proxy.hang(False)
            server.stop()
            with pytest.raises(BackendUnavailable):
                call(rbac)
        assert fake_claude.requests == []


class TestKeySource:
    def test_a_missing_key_stops_startup(self, tmp_path: Path) -> None:
        policy = {
            "workspaces": {"production": {"api_key": {"file": str(tmp_path / "absent.key")}}},
            "roles": {"user": {"models": ["claude-haiku-*"]}},
        }
        with pytest.raises(PolicyError, match=r"absent\.key"):
            RBAC(policy)

    def test_a_raising_revocation_source(self, fake_claude: FakeClaude) -> None:
        def broken() -> list[str]:
            raise TimeoutError("revocation list unreachable")

        rbac = RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url, revoked=broken)
        with pytest.raises(BackendUnavailable):
            call(rbac)
        assert fake_claude.requests == []


class TestPolicyReload:
    """With ``on_reload_error="deny"`` (the opt-in; the default keeps the last good policy, see
    tests/enforcement/test_reload.py)."""

    def test_a_reload_that_raises_denies_until_a_good_one(self, tmp_path: Path, fake_claude: FakeClaude) -> None:
        path = tmp_path / "rbac.toml"
        path.write_text('version = 1\n[roles.user]\nmodels = ["claude-haiku-*"]\n')
        rbac = RBAC(path, api_key=KEY, base_url=fake_claude.url, on_reload_error="deny")
        call(rbac)
        path.write_text('version = 1\n[roles.user]\nmodels = ["claude-haiku-*"]\nrpm = -1\n')
        with pytest.raises(PolicyError, match="rpm"):
            rbac.reload_policy()
        with pytest.raises(BackendUnavailable):
            call(rbac)
        with pytest.raises(BackendUnavailable):
            rbac.require(ALICE, "user")
        assert fake_claude.count() == 1
        path.write_text('version = 1\n[roles.user]\nmodels = ["claude-haiku-*"]\n')
        rbac.reload_policy()
        call(rbac)
        assert fake_claude.count() == 2

    def test_a_reload_that_hangs_times_out_and_denies(self, fake_claude: FakeClaude) -> None:
        rbac = RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url, on_reload_error="deny")
        release = threading.Event()

        class SlowSource(dict):  # a policy source that blocks, like a stuck network mount
            def items(self):  # type: ignore[no-untyped-def]
                release.wait(10)
                return super().items()

        started = time.monotonic()
        with pytest.raises(PolicyError, match="took longer"):
            rbac.reload_policy(SlowSource(roles={}), timeout=0.3)
        assert time.monotonic() - started < 1.0
        with pytest.raises(BackendUnavailable):
            call(rbac)
        release.set()
        assert fake_claude.requests == []

    def test_a_reload_revokes_at_once(self, fake_claude: FakeClaude) -> None:
        rbac = RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url)
        call(rbac)
        rbac.reload_policy({"roles": {"user": {"models": ["claude-haiku-*"], "allowed": False}}})
        with pytest.raises(Exception, match="may not use the Claude API"):
            call(rbac)
        assert fake_claude.count() == 1
