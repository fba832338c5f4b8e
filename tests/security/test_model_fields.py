"""Every field of a request that names a model is governed, not only ``model`` (issue #14, item 1).

The attack: a ``user`` role limited to haiku sends ``model="claude-haiku-4-5"`` and names opus somewhere
else: in the beta advisor tool (which calls its own model, with its own ``max_tokens``), through
``extra_body``, in a ``fallbacks`` entry, inside a batch item, or in a tool type or field the governor has
never seen. Each is refused before FakeClaude receives a byte; an allowed advisor gets its ``max_tokens``
clamped (or the cap, when it gives none) and reserved against TPM like the main call's. A ``model`` key in
the conversation or a JSON schema is data, not a model that runs, and passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from claude_rbac import RBAC, AccessDenied, Policy, Principal, RateLimited
from claude_rbac.policy import DEFAULT_POLICY
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-model-fields-tests-0000000000000000000000000-MFLD"
HAIKU, SONNET, OPUS = "claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-7"
MESSAGES = [{"role": "user", "content": "Should I refactor this?"}]
UMA = Principal("uma", "user")  # haiku only, max_tokens 512
PAUL = Principal("paul", "power")  # haiku, sonnet, opus; max_tokens 4096
ADVISOR_BETA = "advisor-tool-2026-03-01"
ROLES = DEFAULT_POLICY["roles"]
ADVISING = {**DEFAULT_POLICY, "roles": {**ROLES, "user": {**ROLES["user"], "tools": ["custom", "advisor"]}}}
"""The guide's roles, each granted the advisor tool (issue #15): here only its models are in question."""


def advisor(model: str = OPUS, **extra: Any) -> dict[str, Any]:
    """The beta advisor tool (``BetaAdvisorTool20260301Param`` in the installed SDK)."""
    return {"type": "advisor_20260301", "name": "advisor", "model": model, **extra}


Make = Callable[..., RBAC]


@pytest.fixture
def make(fake_claude: FakeClaude) -> Iterator[Make]:
    built: list[RBAC] = []

    def build(policy: Any = None, **options: Any) -> RBAC:
        built.append(RBAC(policy or ADVISING, api_key=KEY, base_url=fake_claude.url, **options))
        return built[-1]

    yield build
    for rbac in built:
        rbac.close()


def refused(call: Callable[[], object]) -> AccessDenied:
    with pytest.raises(AccessDenied) as info:
        call()
    return info.value


class TestTheAdvisorTool:
    def test_an_advisor_on_a_model_the_role_lacks_is_refused(self, make: Make, fake_claude: FakeClaude) -> None:
        claude = make().client(UMA)
        error = refused(
            lambda: claude.beta.messages.create(
                model=HAIKU,
                max_tokens=100,
                messages=MESSAGES,
                tools=[advisor(max_tokens=32000)],  # type: ignore[list-item]
                betas=[ADVISOR_BETA],
            )
        )
        assert error.reason == "model_not_allowed"
        assert OPUS in error.message
        assert fake_claude.requests == []

    def test_through_extra_body(self, make: Make, fake_claude: FakeClaude) -> None:
        claude = make().client(UMA)
        error = refused(
            lambda: claude.messages.create(
                model=HAIKU, max_tokens=100, messages=MESSAGES, extra_body={"tools": [advisor(max_tokens=32000)]}
            )
        )
        assert error.reason == "model_not_allowed"
        assert fake_claude.requests == []

    def test_inside_a_batch_item(self, make: Make, fake_claude: FakeClaude) -> None:
        claude = make().client(UMA)
        items = [
            {"custom_id": "fine", "params": {"model": HAIKU, "max_tokens": 10, "messages": MESSAGES}},
            {
                "custom_id": "sneaky",
                "params": {"model": HAIKU, "max_tokens": 10, "messages": MESSAGES, "tools": [advisor()]},
            },
        ]
        error = refused(lambda: claude.messages.batches.create(requests=items))  # type: ignore[arg-type]
        assert error.reason == "model_not_allowed"
        assert fake_claude.requests == []

    def test_with_count_tokens(self, make: Make, fake_claude: FakeClaude) -> None:
        claude = make().client(UMA)
        error = refused(
            lambda: claude.messages.count_tokens(model=HAIKU, messages=MESSAGES, extra_body={"tools": [advisor()]})
        )
        assert error.reason == "model_not_allowed"
        assert fake_claude.requests == []

    def test_a_route_scope_narrows_the_advisor_too(self, make: Make, fake_claude: FakeClaude) -> None:
        claude = make().client(PAUL, models="claude-haiku-*")
        error = refused(
            lambda: claude.messages.create(
                model=HAIKU, max_tokens=100, messages=MESSAGES, extra_body={"tools": [advisor()]}
            )
        )
        assert error.reason == "model_not_allowed"
        assert fake_claude.requests == []

    def test_an_allowed_advisor_is_clamped_to_the_role_cap(self, make: Make, fake_claude: FakeClaude) -> None:
        tools = [advisor(max_tokens=32000), advisor(SONNET)]  # the second gives no max_tokens: it gets the cap
        make().client(PAUL).messages.create(model=HAIKU, max_tokens=100, messages=MESSAGES, extra_body={"tools": tools})
        (sent,) = fake_claude.requests
        assert [tool["max_tokens"] for tool in sent.json["tools"]] == [4096, 4096]
        assert [tool["model"] for tool in sent.json["tools"]] == [OPUS, SONNET]
        assert sent.json["max_tokens"] == 100

    def test_reject_mode_refuses_an_advisor_above_the_cap(self, make: Make, fake_claude: FakeClaude) -> None:
        policy = Policy.from_dict(
            {
                "on_excess": "reject",
                "roles": {"power": {"models": ["claude-*"], "max_tokens": 4096, "tools": ["advisor"]}},
            }
        )
        error = refused(
            lambda: (
                make(policy)
                .client(PAUL)
                .messages.create(
                    model=HAIKU, max_tokens=100, messages=MESSAGES, extra_body={"tools": [advisor(max_tokens=32000)]}
                )
            )
        )
        assert error.reason == "max_tokens_exceeded"
        assert fake_claude.requests == []

    def test_the_advisor_max_tokens_is_reserved_against_tpm(self, make: Make, fake_claude: FakeClaude) -> None:
        policy = Policy.from_dict(
            {"roles": {"power": {"models": ["claude-*"], "max_tokens": 4096, "tpm": 3000, "tools": ["advisor"]}}}
        )
        claude = make(policy).client(PAUL)
        claude.messages.create(model=HAIKU, max_tokens=100, messages=MESSAGES)  # alone, it fits
        with pytest.raises(RateLimited):  # with an advisor that may write 4,000 tokens, it cannot
            claude.messages.create(
                model=HAIKU, max_tokens=100, messages=MESSAGES, extra_body={"tools": [advisor(max_tokens=4000)]}
            )
        assert fake_claude.count() == 1

    def test_async_clients_refuse_it_too(self, make: Make, fake_claude: FakeClaude) -> None:
        rbac = make()

        async def main() -> None:
            claude = rbac.async_client(UMA)
            with pytest.raises(AccessDenied) as info:
                await claude.messages.create(
                    model=HAIKU, max_tokens=100, messages=MESSAGES, extra_body={"tools": [advisor()]}
                )
            assert info.value.reason == "model_not_allowed"
            await rbac.aclose()

        asyncio.run(main())
        assert fake_claude.requests == []


class TestFallbacks:
    def test_a_fallback_on_a_model_the_role_lacks_is_refused(self, make: Make, fake_claude: FakeClaude) -> None:
        error = refused(
            lambda: (
                make()
                .client(UMA)
                .messages.create(
                    model=HAIKU, max_tokens=100, messages=MESSAGES, extra_body={"fallbacks": [{"model": OPUS}]}
                )
            )
        )
        assert error.reason == "model_not_allowed"
        assert fake_claude.requests == []

    def test_default_fallbacks_let_the_server_choose_and_are_refused(self, make: Make, fake_claude: FakeClaude) -> None:
        with pytest.raises(ValueError, match="fallbacks"):
            make().client(UMA).messages.create(
                model=HAIKU, max_tokens=100, messages=MESSAGES, extra_body={"fallbacks": "default"}
            )
        assert fake_claude.requests == []

    def test_a_fallback_max_tokens_is_clamped(self, make: Make, fake_claude: FakeClaude) -> None:
        make().client(PAUL).messages.create(
            model=OPUS,
            max_tokens=100,
            messages=MESSAGES,
            extra_body={"fallbacks": [{"model": SONNET, "max_tokens": 9000}, {"model": HAIKU}]},
        )
        assert fake_claude.requests[0].json["fallbacks"] == [{"model": SONNET, "max_tokens": 4096}, {"model": HAIKU}]


UNKNOWN_PLACES = {
    "a tool type the governor does not know": {"tools": [{"type": "delegate_20270101", "name": "d", "model": HAIKU}]},
    "a top-level field": {"router_model": HAIKU},
    "a nested setting": {"context_management": {"edits": [{"type": "compact_20270101", "model": HAIKU}]}},
    "a list of models": {"output_config": {"models": [HAIKU]}},
}


@pytest.mark.parametrize("extra", UNKNOWN_PLACES.values(), ids=UNKNOWN_PLACES.keys())
def test_a_model_named_where_the_governor_does_not_look_is_refused(
    make: Make, fake_claude: FakeClaude, extra: dict[str, Any]
) -> None:
    """Even an allowed model: the governor cannot tell what it costs or when it runs."""
    error = refused(
        lambda: make().client(UMA).messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES, extra_body=extra)
    )
    assert error.reason == "model_not_allowed"
    assert "does not govern" in error.message
    assert fake_claude.requests == []


def test_a_model_outside_a_batch_items_params_is_refused(make: Make, fake_claude: FakeClaude) -> None:
    items = [{"custom_id": "a", "model": OPUS, "params": {"model": HAIKU, "max_tokens": 10, "messages": MESSAGES}}]
    error = refused(lambda: make().client(UMA).messages.batches.create(requests=items))  # type: ignore[arg-type]
    assert error.reason == "model_not_allowed"
    assert fake_claude.requests == []


def test_a_model_key_in_data_is_not_a_model(make: Make, fake_claude: FakeClaude) -> None:
    """A tool call's input, a JSON schema and a fallback block echoed back hold data: nothing runs on it."""
    messages = [
        {"role": "user", "content": "Which car?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "car", "input": {"model": "Corolla"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
    ]
    tool = {
        "name": "car",
        "input_schema": {"type": "object", "properties": {"model": {"type": "string", "default": OPUS}}},
        "input_examples": [{"model": OPUS}],
    }
    make().client(UMA).messages.create(
        model=HAIKU, max_tokens=10, messages=messages, tools=[tool], metadata={"user_id": "u"}
    )
    assert fake_claude.count() == 1


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(
    lambda name: name not in {"messages", "system", "metadata", "input_schema", "input_examples", "schema"}
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.lists(st.one_of(_names, st.just(0)), min_size=1, max_size=5), key=st.sampled_from(["model", "x_model"]))
def test_a_model_anywhere_outside_data_is_refused(
    make: Make, fake_claude: FakeClaude, path: list[Any], key: str
) -> None:
    """Wherever a request nests a ``model`` (or ``*_model``) key outside the data fields, the call is refused."""
    value: Any = {key: HAIKU}
    for step in reversed(path):
        value = [value] if step == 0 else {step: value}
    # Not this property's case: a list body, or a top-level field of the request itself.
    assume(isinstance(value, dict) and not set(value) & {"model", "max_tokens", "fallbacks", "tools", "stream"})
    with pytest.raises(AccessDenied):
        make().client(UMA).messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES, extra_body=value)
    assert fake_claude.requests == []
