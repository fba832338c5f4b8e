"""Revocation: bounded in time, off the event loop, cached briefly, and enforced in every mode (issue #14, items 8, 14).

The attacks on the ``revoked=`` source: one that hangs (the call used to wait for it and, when the hang
ended, go through), one that answers junk, a plain string (checked character by character, so a key
fingerprint "matched" nothing), a generator (used up by the first check). And in shadow mode, which lets
policy denials through: a revoked key must never be sent, not even on a call the policy denied.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from claude_rbac import RBAC, AccessDenied, BackendUnavailable, Policy, Principal
from claude_rbac.policy import DEFAULT_POLICY, fingerprint
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-revocation-tests-0000000000000000000000000000-RVKD"
HAIKU, OPUS = "claude-haiku-4-5", "claude-opus-4-7"
MESSAGES = [{"role": "user", "content": "hi"}]
UMA = Principal("uma", "user")


def call(rbac: RBAC, model: str = HAIKU) -> None:
    rbac.client(UMA).messages.create(model=model, max_tokens=10, messages=MESSAGES)


@pytest.fixture
def make(fake_claude: FakeClaude) -> Iterator[Callable[..., RBAC]]:
    built: list[RBAC] = []

    def build(policy: Any = None, **options: Any) -> RBAC:
        rbac = RBAC(policy or Policy.default(), api_key=KEY, base_url=fake_claude.url, **options)
        built.append(rbac)
        return rbac

    yield build
    for rbac in built:
        rbac.close()


class TestShadowModeNeverSendsARevokedKey:
    """Item 14: shadow mode records denials and sends the call anyway, except with a revoked key."""

    @pytest.mark.parametrize("source", ["policy", "collection", "callable"])
    @pytest.mark.parametrize("model", [HAIKU, OPUS], ids=["allowed call", "call the policy denies"])
    def test_sync(self, make: Callable[..., RBAC], fake_claude: FakeClaude, source: str, model: str) -> None:
        revoked = [fingerprint(KEY)]
        if source == "policy":
            rbac = make(Policy.from_dict({**DEFAULT_POLICY, "revoked": revoked}), mode="shadow")
        else:
            rbac = make(mode="shadow", revoked=revoked if source == "collection" else lambda: revoked)
        with pytest.raises(AccessDenied) as info:
            call(rbac, model)
        assert info.value.reason == "key_revoked"
        assert fake_claude.requests == []

    def test_async(self, make: Callable[..., RBAC], fake_claude: FakeClaude) -> None:
        rbac = make(mode="shadow", revoked=lambda: [fingerprint(KEY)])

        async def main() -> None:
            for model in (HAIKU, OPUS):
                with pytest.raises(AccessDenied) as info:
                    await rbac.async_client(UMA).messages.create(model=model, max_tokens=10, messages=MESSAGES)
                assert info.value.reason == "key_revoked"
            await rbac.aclose()

        asyncio.run(main())
        assert fake_claude.requests == []


class TestAHangingSource:
    def test_the_call_fails_closed_within_the_bound_and_not_after_the_hang(
        self, make: Callable[..., RBAC], fake_claude: FakeClaude
    ) -> None:
        """The default bound is 1 s. The source hangs for 3 s, then says nothing is revoked: too late for this call."""
        release = threading.Event()

        def hanging() -> list[str]:
            release.wait(3)
            return []

        rbac = make(revoked=hanging)
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            call(rbac)
        waited = time.monotonic() - started
        release.set()
        assert waited < 2.5
        assert fake_claude.requests == []

    def test_an_answer_that_comes_later_serves_the_next_calls(
        self, make: Callable[..., RBAC], fake_claude: FakeClaude
    ) -> None:
        release = threading.Event()
        asked = []

        def slow() -> list[str]:
            asked.append(1)
            release.wait(5)
            return []

        rbac = make(revoked=slow, revoked_timeout=0.2)
        with pytest.raises(BackendUnavailable):
            call(rbac)
        with pytest.raises(BackendUnavailable):  # still hanging: no second question, the same answer awaited
            call(rbac)
        release.set()
        time.sleep(0.1)
        call(rbac)
        assert len(asked) == 1
        assert fake_claude.count() == 1

    def test_async_clients_wait_off_the_event_loop(self, make: Callable[..., RBAC], fake_claude: FakeClaude) -> None:
        release = threading.Event()

        def hanging() -> list[str]:
            release.wait(5)
            return []

        rbac = make(revoked=hanging, revoked_timeout=0.5)
        ticks = 0

        async def heartbeat(stop: asyncio.Event) -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        async def main() -> None:
            stop = asyncio.Event()
            beating = asyncio.create_task(heartbeat(stop))
            with pytest.raises(BackendUnavailable):
                await rbac.async_client(UMA).messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)
            stop.set()
            await beating
            await rbac.aclose()

        asyncio.run(main())
        release.set()
        assert ticks >= 20  # the loop kept running through the 0.5 s wait (about 50 ticks)
        assert fake_claude.requests == []


class TestTheAnswerIsCached:
    def test_a_callable_is_asked_once_per_second(self, make: Callable[..., RBAC], fake_claude: FakeClaude) -> None:
        asked = []

        def source() -> list[str]:
            asked.append(time.monotonic())
            return []

        rbac = make(revoked=source)
        for _ in range(8):  # the user role's rpm is 10
            call(rbac)
        assert fake_claude.count() == 8
        assert 1 <= len(asked) <= 2  # twice only if the calls straddled the 1 s expiry

    def test_a_collection_is_read_live(self, make: Callable[..., RBAC], fake_claude: FakeClaude) -> None:
        revoked: set[str] = set()
        rbac = make(revoked=revoked)
        call(rbac)
        revoked.add(fingerprint(KEY))
        with pytest.raises(AccessDenied):
            call(rbac)
        assert fake_claude.count() == 1


class TestOnlyFingerprintsOrACallable:
    @pytest.mark.parametrize(
        "source",
        [KEY, fingerprint(KEY), KEY.encode(), 42, (item for item in [KEY]), [fingerprint(KEY), 7]],
        ids=["a key string", "one fingerprint string", "bytes", "a number", "a generator", "a non-string item"],
    )
    def test_refused_at_construction(self, fake_claude: FakeClaude, source: object) -> None:
        with pytest.raises(TypeError):
            RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url, revoked=source)  # type: ignore[arg-type]

    def test_an_async_function_is_refused(self, fake_claude: FakeClaude) -> None:
        async def source() -> list[str]:
            return []

        with pytest.raises(TypeError):
            RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url, revoked=source)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "answer", [fingerprint(KEY), None, [1, 2], iter([fingerprint(KEY)])], ids=["str", "None", "ints", "iter"]
    )
    def test_a_callable_answering_junk_fails_closed(
        self, make: Callable[..., RBAC], fake_claude: FakeClaude, answer: object
    ) -> None:
        rbac = make(revoked=lambda: answer)
        with pytest.raises(BackendUnavailable):
            call(rbac)
        assert fake_claude.requests == []
