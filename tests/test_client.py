"""The governed client, through the real anthropic SDK over real HTTP to FakeClaude."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import anthropic
import pytest

from claude_rbac import RBAC, AccessDenied, InvalidRequest, NotAuthenticated, Policy, Principal, RateLimited
from claude_rbac.policy import DEFAULT_POLICY
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-test-key-for-the-governed-client-tests-0000-abcd"
MESSAGES = [{"role": "user", "content": "Hello there"}]
ALICE = Principal("alice", "user")
BOB = Principal("bob", "power")
VERA = Principal("vera", "viewer")

Make = Callable[..., RBAC]


@pytest.fixture
def make(fake_claude: FakeClaude) -> Make:
    def build(policy: Any = None, **kwargs: Any) -> RBAC:
        kwargs.setdefault("api_key", KEY)
        kwargs.setdefault("base_url", fake_claude.url)
        kwargs.setdefault("client_options", {"max_retries": 2})
        return RBAC(policy if policy is not None else Policy.default(), **kwargs)

    return build


def test_the_readme_example(make: Make, fake_claude: FakeClaude) -> None:
    claude = make().client(Principal(id="alice", role="user"))
    assert isinstance(claude, anthropic.Anthropic)
    with pytest.raises(AccessDenied) as info:
        claude.messages.create(model="claude-opus-4-7", max_tokens=100, messages=MESSAGES)
    assert info.value.status_code == 403
    assert info.value.to_dict()["error"] == {
        "type": "permission_error",
        "message": "Role 'user' may not use model 'claude-opus-4-7'.",
        "error_code": "model_not_allowed",
    }
    assert fake_claude.requests == []


class TestMessagesCreate:
    def test_allowed_call_goes_through_with_the_key(self, make: Make, fake_claude: FakeClaude) -> None:
        message = make().client(ALICE).messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES)
        assert message.content[0].type == "text"
        (sent,) = fake_claude.requests
        assert sent.json["model"] == "claude-haiku-4-5"
        assert sent.json["max_tokens"] == 100
        assert sent.api_key == KEY

    def test_max_tokens_is_clamped_by_default(self, make: Make, fake_claude: FakeClaude) -> None:
        make().client(ALICE).messages.create(model="claude-haiku-4-5", max_tokens=4000, messages=MESSAGES)
        assert fake_claude.requests[0].json["max_tokens"] == 512
        assert fake_claude.requests[0].json["messages"] == MESSAGES

    def test_reject_instead_of_clamp(self, make: Make, fake_claude: FakeClaude) -> None:
        policy = Policy.from_dict({**DEFAULT_POLICY, "on_excess": "reject"})
        with pytest.raises(AccessDenied) as info:
            make(policy).client(ALICE).messages.create(model="claude-haiku-4-5", max_tokens=513, messages=MESSAGES)
        assert info.value.reason == "max_tokens_exceeded"
        assert fake_claude.requests == []

    @pytest.mark.parametrize(
        ("principal", "reason"),
        [
            (VERA, "api_access_not_allowed"),
            (Principal("x", "ghost"), "unknown_role"),
            (Principal("x", None), "api_access_not_allowed"),
        ],
    )
    def test_roles_without_api_access(
        self, make: Make, fake_claude: FakeClaude, principal: Principal, reason: str
    ) -> None:
        with pytest.raises(AccessDenied) as info:
            make().client(principal).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
        assert info.value.reason == reason
        assert fake_claude.requests == []

    def test_no_principal_is_unauthenticated(self, make: Make, fake_claude: FakeClaude) -> None:
        with pytest.raises(NotAuthenticated) as info:
            make().client(None).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
        assert info.value.status_code == 401
        assert fake_claude.requests == []

    @pytest.mark.parametrize("stream", [True, False])
    @pytest.mark.parametrize("max_tokens", [0, -1, 1.5, True, 10**12, "100", None, 100_000.0])
    def test_bad_max_tokens(self, make: Make, fake_claude: FakeClaude, max_tokens: Any, stream: bool) -> None:
        # Non-streaming too: the SDK's own long-request arithmetic used to turn a string into a TypeError (a 500).
        client = make().client(ALICE)
        with pytest.raises(InvalidRequest, match="max_tokens"):
            client.messages.create(model="claude-haiku-4-5", max_tokens=max_tokens, messages=MESSAGES, stream=stream)
        assert fake_claude.requests == []

    def test_missing_max_tokens(self, make: Make, fake_claude: FakeClaude) -> None:
        # The low-level client.post() skips the SDK's own argument checks: ours still run.
        client = make().client(ALICE)
        with pytest.raises(InvalidRequest, match="max_tokens is required"):
            client.post(
                "/v1/messages",
                cast_to=anthropic.types.Message,
                body={"model": "claude-haiku-4-5", "messages": MESSAGES},
            )
        with pytest.raises(InvalidRequest, match="model is required"):
            client.post("/v1/messages", cast_to=anthropic.types.Message, body={"max_tokens": 5, "messages": MESSAGES})
        with pytest.raises(AccessDenied):
            client.post(
                "/v1/messages",
                cast_to=anthropic.types.Message,
                body={"model": "claude-opus-4-7", "max_tokens": 5, "messages": MESSAGES},
            )
        assert fake_claude.requests == []

    @pytest.mark.parametrize("model", [42, None])
    def test_model_must_be_a_string(self, make: Make, fake_claude: FakeClaude, model: Any) -> None:
        with pytest.raises(InvalidRequest, match="model"):
            make().client(ALICE).messages.create(model=model, max_tokens=10, messages=MESSAGES)
        assert fake_claude.requests == []

    def test_thinking_budget_stays_below_a_clamped_max_tokens(self, make: Make, fake_claude: FakeClaude) -> None:
        make().client(BOB).messages.create(
            model="claude-sonnet-4-6",
            max_tokens=16000,
            thinking={"type": "enabled", "budget_tokens": 8000},
            messages=MESSAGES,
        )
        sent = fake_claude.requests[0].json
        assert sent["max_tokens"] == 4096
        assert 1024 <= sent["thinking"]["budget_tokens"] < 4096

    def test_thinking_that_cannot_fit_is_rejected(self, make: Make, fake_claude: FakeClaude) -> None:
        with pytest.raises(AccessDenied, match="thinking") as info:
            make().client(ALICE).messages.create(
                model="claude-haiku-4-5",
                max_tokens=4000,
                thinking={"type": "enabled", "budget_tokens": 2000},
                messages=MESSAGES,
            )
        assert info.value.reason == "max_tokens_exceeded"
        assert fake_claude.requests == []

    def test_every_fallback_model_is_checked(self, make: Make, fake_claude: FakeClaude) -> None:
        client = make().client(ALICE)
        with pytest.raises(AccessDenied) as info:
            client.beta.messages.create(
                model="claude-haiku-4-5",
                max_tokens=10,
                messages=MESSAGES,
                fallbacks=[{"model": "claude-opus-4-7"}],
            )
        assert info.value.reason == "model_not_allowed"
        assert "claude-opus-4-7" in info.value.message
        assert fake_claude.requests == []
        client.beta.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=MESSAGES,
            fallbacks=[{"model": "claude-haiku-4-6", "max_tokens": 9000}],
        )
        assert fake_claude.requests[0].json["fallbacks"] == [{"model": "claude-haiku-4-6", "max_tokens": 512}]

    def test_route_scope_narrows_never_widens(self, make: Make, fake_claude: FakeClaude) -> None:
        rbac = make()
        narrow = rbac.client(BOB, models=["claude-opus-*"], max_tokens=100)
        with pytest.raises(AccessDenied):
            narrow.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MESSAGES)
        narrow.messages.create(model="claude-opus-4-7", max_tokens=1000, messages=MESSAGES)
        assert fake_claude.requests[-1].json["max_tokens"] == 100
        wide = rbac.client(ALICE, models=["claude-opus-*", "claude-haiku-*"], max_tokens=100_000)
        with pytest.raises(AccessDenied):
            wide.messages.create(model="claude-opus-4-7", max_tokens=10, messages=MESSAGES)
        wide.messages.create(model="claude-haiku-4-5", max_tokens=5000, messages=MESSAGES)
        assert fake_claude.requests[-1].json["max_tokens"] == 512
        assert len(fake_claude.requests) == 2


class TestStreaming:
    def test_stream_helper(self, make: Make, fake_claude: FakeClaude) -> None:
        client = make().client(ALICE)
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=900, messages=MESSAGES) as stream:
            text = stream.get_final_text()
            final = stream.get_final_message()
        assert text.startswith("Hello from FakeClaude")
        assert final.usage.output_tokens == 10
        assert fake_claude.requests[0].json["max_tokens"] == 512
        assert fake_claude.requests[0].json["stream"] is True

    def test_create_with_stream_true_is_governed(self, make: Make, fake_claude: FakeClaude) -> None:
        client = make().client(ALICE)
        with pytest.raises(AccessDenied):
            client.messages.create(model="claude-opus-4-7", max_tokens=10, messages=MESSAGES, stream=True)
        assert fake_claude.requests == []
        events = list(client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES, stream=True))
        assert events[0].type == "message_start"
        assert events[-1].type == "message_stop"


class TestOtherEndpoints:
    def test_count_tokens_checks_the_model(self, make: Make, fake_claude: FakeClaude) -> None:
        client = make().client(ALICE)
        assert client.messages.count_tokens(model="claude-haiku-4-5", messages=MESSAGES).input_tokens > 0
        with pytest.raises(AccessDenied):
            client.messages.count_tokens(model="claude-opus-4-7", messages=MESSAGES)
        assert fake_claude.count("/v1/messages/count_tokens") == 1

    def test_every_request_in_a_batch_is_checked(self, make: Make, fake_claude: FakeClaude) -> None:
        client = make().client(ALICE)
        ok = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": MESSAGES}
        with pytest.raises(AccessDenied) as info:
            client.messages.batches.create(
                requests=[
                    {"custom_id": "a", "params": ok},
                    {"custom_id": "b", "params": {**ok, "model": "claude-opus-4-7"}},
                ]
            )
        assert info.value.reason == "model_not_allowed"
        assert fake_claude.requests == []
        batch = client.messages.batches.create(
            requests=[{"custom_id": "a", "params": ok}, {"custom_id": "b", "params": {**ok, "max_tokens": 5000}}]
        )
        sent = fake_claude.requests[0].json["requests"]
        assert [item["params"]["max_tokens"] for item in sent] == [10, 512]
        assert client.messages.batches.retrieve(batch.id).id == batch.id
        assert [r.custom_id for r in client.messages.batches.results(batch.id)] == ["a", "b"]

    def test_beta_messages_are_governed(self, make: Make, fake_claude: FakeClaude) -> None:
        client = make().client(ALICE)
        with pytest.raises(AccessDenied):
            client.beta.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MESSAGES)
        client.beta.messages.create(model="claude-haiku-4-5", max_tokens=5000, messages=MESSAGES)
        assert fake_claude.requests[0].json["max_tokens"] == 512

    @pytest.mark.parametrize(
        "call",
        [
            lambda c: c.models.list(),
            lambda c: c.messages.batches.list(),
            lambda c: c.messages.batches.delete("msgbatch_x"),
            lambda c: c.beta.files.list(),
        ],
    )
    def test_endpoints_the_policy_does_not_know_are_denied(
        self, make: Make, fake_claude: FakeClaude, call: Callable[[anthropic.Anthropic], Any]
    ) -> None:
        with pytest.raises(AccessDenied) as info:
            call(make().client(Principal("carol", "admin")))
        assert info.value.reason == "endpoint_not_allowed"
        assert fake_claude.requests == []

    def test_viewers_cannot_read_batches(self, make: Make, fake_claude: FakeClaude) -> None:
        with pytest.raises(AccessDenied):
            make().client(VERA).messages.batches.retrieve("msgbatch_x")
        assert fake_claude.requests == []


class TestRetries:
    def test_a_denial_is_never_retried(self, make: Make, fake_claude: FakeClaude) -> None:
        client = make(client_options={"max_retries": 5}).client(ALICE)
        for _ in range(3):
            with pytest.raises(AccessDenied):
                client.messages.create(model="claude-opus-4-7", max_tokens=10, messages=MESSAGES)
        assert fake_claude.requests == []

    def test_rpm_counts_once_per_call_not_per_attempt(self, make: Make, fake_claude: FakeClaude) -> None:
        policy = Policy.from_dict({"roles": {"user": {"models": ["claude-haiku-*"], "rpm": 2}}})
        client = make(policy, client_options={"max_retries": 3}).client(ALICE)
        fake_claude.script_error(529, "overloaded_error", "Overloaded", times=2, headers={"retry-after-ms": "1"})
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
        assert fake_claude.count() == 3  # two 529s, then the success: one call
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
        with pytest.raises(RateLimited):
            client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
        assert fake_claude.count() == 4

    def test_every_attempt_is_still_checked_and_clamped(self, make: Make, fake_claude: FakeClaude) -> None:
        client = make(client_options={"max_retries": 2}).client(ALICE)
        fake_claude.script_error(529, "overloaded_error", "Overloaded", headers={"retry-after-ms": "1"})
        client.messages.create(model="claude-haiku-4-5", max_tokens=9000, messages=MESSAGES)
        assert [r.json["max_tokens"] for r in fake_claude.requests] == [512, 512]


class TestRateLimits:
    def test_rpm(self, make: Make, fake_claude: FakeClaude) -> None:
        client = make().client(ALICE)
        for _ in range(10):
            client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
        with pytest.raises(RateLimited) as info:
            client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
        assert info.value.status_code == 429
        assert 1 <= info.value.retry_after <= 60
        assert info.value.headers == {"Retry-After": str(info.value.retry_after)}
        assert info.value.to_dict()["error"]["type"] == "rate_limit_error"
        assert fake_claude.count() == 10

    def test_buckets_are_per_principal(self, make: Make, fake_claude: FakeClaude) -> None:
        policy = Policy.from_dict({"roles": {"user": {"models": ["claude-haiku-*"], "rpm": 1}}})
        rbac = make(policy)
        for who in ("a/b", "a", "b", "a:b", "a%2Fb"):
            rbac.client(Principal(who, "user")).messages.create(
                model="claude-haiku-4-5", max_tokens=1, messages=MESSAGES
            )
        assert fake_claude.count() == 5

    def test_route_rpm_is_a_bucket_of_its_own(self, make: Make, fake_claude: FakeClaude) -> None:
        rbac = make()
        route = rbac.client(ALICE, rpm=1)
        route.messages.create(model="claude-haiku-4-5", max_tokens=1, messages=MESSAGES)
        with pytest.raises(RateLimited):
            route.messages.create(model="claude-haiku-4-5", max_tokens=1, messages=MESSAGES)
        rbac.client(ALICE).messages.create(model="claude-haiku-4-5", max_tokens=1, messages=MESSAGES)
        assert fake_claude.count() == 2


class TestAsync:
    def test_the_async_client(self, make: Make, fake_claude: FakeClaude) -> None:
        rbac = make()
        claude = rbac.async_client(ALICE)
        assert isinstance(claude, anthropic.AsyncAnthropic)

        async def main() -> None:
            with pytest.raises(AccessDenied):
                await claude.messages.create(model="claude-opus-4-7", max_tokens=10, messages=MESSAGES)
            await claude.messages.create(model="claude-haiku-4-5", max_tokens=9999, messages=MESSAGES)
            async with claude.messages.stream(model="claude-haiku-4-5", max_tokens=9999, messages=MESSAGES) as s:
                assert (await s.get_final_text()).startswith("Hello")
            with pytest.raises(AccessDenied):
                await claude.models.list()
            await rbac.aclose()

        asyncio.run(main())
        assert [r.json["max_tokens"] for r in fake_claude.requests] == [512, 512]

    def test_sync_and_async_clients_share_the_memory_buckets(self, make: Make, fake_claude: FakeClaude) -> None:
        policy = Policy.from_dict({"roles": {"user": {"models": ["claude-haiku-*"], "rpm": 2}}})
        rbac = make(policy)
        rbac.client(ALICE).messages.create(model="claude-haiku-4-5", max_tokens=1, messages=MESSAGES)

        async def main() -> None:
            claude = rbac.async_client(ALICE)
            await claude.messages.create(model="claude-haiku-4-5", max_tokens=1, messages=MESSAGES)
            with pytest.raises(RateLimited):
                await claude.messages.create(model="claude-haiku-4-5", max_tokens=1, messages=MESSAGES)
            await rbac.aclose()

        asyncio.run(main())
        assert fake_claude.count() == 2


class TestConstruction:
    def test_api_key_falls_back_to_the_environment(
        self, fake_claude: FakeClaude, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-from-the-environment-0000000000000000-wxyz")
        rbac = RBAC(Policy.default(), base_url=fake_claude.url)
        rbac.client(ALICE).messages.create(model="claude-haiku-4-5", max_tokens=1, messages=MESSAGES)
        assert fake_claude.requests[0].api_key == "sk-ant-api03-from-the-environment-0000000000000000-wxyz"

    def test_a_missing_key_fails_at_startup(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
        with pytest.raises(ValueError, match="ANTHROPIC_API_KEY"):
            RBAC(Policy.default())

    def test_clients_are_derived_not_constructed(self, make: Make) -> None:
        rbac = make()
        first = rbac.client(ALICE)
        assert rbac.client(ALICE) is first  # the derivation is cached
        other = rbac.client(BOB)
        assert other is not first
        assert other._client is first._client  # one connection pool

    def test_policy_from_a_path_or_a_dict(self, fake_claude: FakeClaude, tmp_path: Any) -> None:
        path = tmp_path / "rbac.json"
        path.write_text('{"version": 1, "roles": {"user": {"models": ["claude-haiku-*"]}}}')
        for source in (path, str(path), {"roles": {"user": {"models": ["claude-haiku-*"]}}}):
            rbac = RBAC(source, api_key=KEY, base_url=fake_claude.url)
            assert rbac.check(ALICE, model="claude-haiku-4-5").allowed

    def test_check_has_no_side_effects(self, make: Make, fake_claude: FakeClaude) -> None:
        policy = Policy.from_dict({"roles": {"user": {"models": ["claude-haiku-*"], "rpm": 1}}})
        rbac = make(policy)
        for _ in range(5):
            assert rbac.check(ALICE, model="claude-haiku-4-5", max_tokens=10).allowed
        rbac.client(ALICE).messages.create(model="claude-haiku-4-5", max_tokens=1, messages=MESSAGES)
        assert fake_claude.count() == 1
        default = make()
        assert default.has_role(BOB, "user")
        assert not default.has_role(ALICE, "power")


def test_an_unknown_role_is_refused_with_its_own_reason_and_logged_once_per_name(
    make: Make, fake_claude: FakeClaude, caplog: pytest.LogCaptureFixture
) -> None:
    rbac = make()
    with caplog.at_level(logging.WARNING, logger="claude_rbac"):
        for principal in (
            Principal("a", "ghost"),
            Principal("b", "ghost"),
            Principal("c", "admn"),
            Principal("a", "ghost"),
        ):
            with pytest.raises(AccessDenied) as info:
                rbac.client(principal).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
            assert info.value.reason == "unknown_role"
            assert info.value.message == f"Role {principal.role!r} is not in the policy."
    warned = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warned) == 2  # one per role name, however many calls
    assert "'ghost'" in warned[0] and "'admn'" in warned[1]
    assert fake_claude.requests == []


def test_an_ungoverned_endpoint_says_so(make: Make, fake_claude: FakeClaude) -> None:
    with pytest.raises(AccessDenied) as info:
        make().client(ALICE).models.list()
    assert info.value.reason == "endpoint_not_allowed"
    assert info.value.message == "This client may only call the Messages API, not GET /v1/models."
