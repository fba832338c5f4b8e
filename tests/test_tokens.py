"""Tokens per minute, budgets and pools: reserved before the call, settled from real usage after it."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from claude_rbac import RBAC, Principal, RateLimited
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-token-tests-000000000000000000000000000000-TOKN"
PROMPT = "Tell me a short story about a lighthouse keeper."
MESSAGES = [{"role": "user", "content": PROMPT}]
ALICE = Principal("alice", "user")


def exact_input(body: Mapping[str, Any]) -> int:
    """FakeClaude's own input count, so a reservation can equal the usage exactly."""
    return math.ceil(len(PROMPT) / 4)


def make(fake: FakeClaude, storage: str, key_prefix: str, role: dict[str, Any], **kwargs: Any) -> RBAC:
    role = {"models": ["claude-haiku-*"], "max_tokens": 50, **role}
    return RBAC(
        {"roles": {"user": role}}, storage=storage, key_prefix=key_prefix, api_key=KEY, base_url=fake.url, **kwargs
    )


def used(rbac: RBAC, principal: Principal, kind: str = "tpm") -> int:
    """Tokens counted in the principal's bucket of ``kind`` right now."""
    rbac.flush()
    role = rbac.policy.roles[str(principal.role)]
    buckets = rbac.quota.buckets(
        role=role.name,
        principal_id=principal.id,
        rpm=None,
        tpm=role.tpm,
        budget_day=role.budget.day,
        pool_tpm=role.pool_tpm,
        tokens=1,
    )
    for bucket, remaining, _ in rbac.quota.remaining(buckets):
        if bucket.kind == kind or (kind == "pool" and "/pool/" in bucket.key):
            return bucket.limit - remaining
    raise AssertionError(f"no {kind} bucket")


def call(rbac: RBAC, principal: Principal = ALICE, max_tokens: int = 50) -> Any:
    return rbac.client(principal).messages.create(model="claude-haiku-4-5", max_tokens=max_tokens, messages=MESSAGES)


def until_limited(rbac: RBAC, limit: int = 50) -> tuple[int, RateLimited]:
    """Call until refused; the tokens the admitted calls used, and the refusal."""
    spent = 0
    for _ in range(limit):
        try:
            message = call(rbac)
        except RateLimited as exc:
            return spent, exc
        spent += message.usage.input_tokens + message.usage.output_tokens
        rbac.flush()
    raise AssertionError(f"no refusal in {limit} calls")


class TestTpm:
    def test_reserve_then_settle_from_usage(self, fake_claude: FakeClaude, storage: str, key_prefix: str) -> None:
        rbac = make(fake_claude, storage, key_prefix, {"tpm": 1000})
        message = call(rbac)
        assert message.usage.output_tokens == 10
        # The reservation (estimate + 50) was settled down to what the call used.
        assert used(rbac, ALICE) == message.usage.input_tokens + message.usage.output_tokens
        rbac.close()

    def test_a_breach(self, fake_claude: FakeClaude, storage: str, key_prefix: str) -> None:
        rbac = make(fake_claude, storage, key_prefix, {"tpm": 200}, token_estimator=exact_input)
        spent, error = until_limited(rbac)
        assert error.reason == "rate_limited"
        assert "tokens" in error.message
        # The sliding window: the refusal may have to wait for this minute to end and then for its count,
        # now the previous minute's, to lose enough weight: up to two minutes.
        assert 1 <= error.retry_after <= 120
        # Each call reserves 12 input + 50 output and uses 12 + 10; the next is refused once
        # 62 more would pass 200.
        assert spent <= 200
        assert spent + 62 > 200
        assert fake_claude.count() == spent // 22
        rbac.close()

    def test_concurrent_calls_cannot_overshoot(self, storage: str, key_prefix: str) -> None:
        with FakeClaude(delay=0.05) as fake:
            rbac = make(fake, storage, key_prefix, {"tpm": 500})
            outcomes: list[int] = []
            lock = threading.Lock()

            def run() -> None:
                try:
                    message = call(rbac)
                    with lock:
                        outcomes.append(message.usage.input_tokens + message.usage.output_tokens)
                except RateLimited:
                    pass

            threads = [threading.Thread(target=run) for _ in range(40)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            # Reservations are an upper bound of usage, so even 40 at once stay under the limit.
            assert outcomes
            assert sum(outcomes) <= 500
            assert fake.count() == len(outcomes)
            rbac.close()

    def test_an_upstream_error_gives_the_reservation_back(
        self, fake_claude: FakeClaude, storage: str, key_prefix: str
    ) -> None:
        rbac = make(fake_claude, storage, key_prefix, {"tpm": 1000}, client_options={"max_retries": 0})
        fake_claude.script_error(500, "api_error", "Internal")
        with pytest.raises(Exception, match="Internal"):
            call(rbac)
        assert used(rbac, ALICE) == 0
        rbac.close()

    def test_pool_is_shared_by_the_role(self, fake_claude: FakeClaude, storage: str, key_prefix: str) -> None:
        rbac = make(fake_claude, storage, key_prefix, {"pool": {"tpm": 100}}, token_estimator=exact_input)
        call(rbac, Principal("a", "user"))  # reserves 62 of the role's 100, settles to 22
        rbac.flush()
        call(rbac, Principal("b", "user"))  # 22 + 62 fits
        rbac.flush()
        with pytest.raises(RateLimited):
            call(rbac, Principal("c", "user"))  # 44 + 62 does not, though c has used nothing
        assert used(rbac, Principal("e", "user"), "pool") == 44
        rbac.close()


class TestStreams:
    def test_usage_comes_from_the_final_message_delta(
        self, fake_claude: FakeClaude, storage: str, key_prefix: str
    ) -> None:
        rbac = make(fake_claude, storage, key_prefix, {"tpm": 1000})
        with rbac.client(ALICE).messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES) as s:
            final = s.get_final_message()
        assert used(rbac, ALICE) == final.usage.input_tokens + final.usage.output_tokens
        rbac.close()

    def test_a_stream_closed_early_keeps_its_reservation(self, key_prefix: str) -> None:
        with FakeClaude(stream_delay=0.02) as fake:
            rbac = make(fake, "memory://", key_prefix, {"tpm": 1000}, token_estimator=exact_input)
            stream = rbac.client(ALICE).messages.create(
                model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES, stream=True
            )
            for event in stream:
                if event.type == "content_block_delta":
                    break
            stream.close()
            assert used(rbac, ALICE) == 12 + 50  # the output is unknown: all of max_tokens stays charged
            rbac.close()

    def test_async_stream(self, fake_claude: FakeClaude, storage: str, key_prefix: str) -> None:
        rbac = make(fake_claude, storage, key_prefix, {"tpm": 1000})

        async def main() -> int:
            client = rbac.async_client(ALICE)
            async with client.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES) as s:
                final = await s.get_final_message()
            await rbac.aclose()
            return final.usage.input_tokens + final.usage.output_tokens

        total = asyncio.run(main())
        assert used(rbac, ALICE) == total
        rbac.close()


class TestBudgets:
    def test_a_daily_budget(self, fake_claude: FakeClaude, storage: str, key_prefix: str) -> None:
        rbac = make(fake_claude, storage, key_prefix, {"budget": {"day": 100}}, token_estimator=exact_input)
        _, error = until_limited(rbac)
        assert error.reason == "token_budget_exceeded"
        now = dt.datetime.now(dt.timezone.utc)
        midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
        assert abs(error.retry_after - (midnight - now).total_seconds()) <= 2
        assert fake_claude.count() == 2  # 2 x 22 used; a third would reserve 62 more and pass 100
        rbac.close()

    def test_a_refusal_gives_back_what_the_other_buckets_took(
        self, fake_claude: FakeClaude, storage: str, key_prefix: str
    ) -> None:
        rbac = make(fake_claude, storage, key_prefix, {"tpm": 1000, "budget": {"day": 70}}, token_estimator=exact_input)
        call(rbac)  # reserves 62, settles to 22
        rbac.flush()
        with pytest.raises(RateLimited) as info:
            call(rbac)  # 22 + 62 > 70: the budget refuses
        assert info.value.reason == "token_budget_exceeded"
        assert used(rbac, ALICE, "tpm") == 22
        assert used(rbac, ALICE, "budget") == 22  # the refused increment was undone too
        rbac.close()
