"""The request fields that are pinned rather than granted (issue #15): the workspace a request names, container
reuse, the advisor tool, betas in any header spelling, and client-wide headers that would skip the governor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from claude_rbac import RBAC, AccessDenied, Policy, Principal
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-workspace-container-tests-000000000000000000-WSCT"
HAIKU, OPUS = "claude-haiku-4-5", "claude-opus-4-7"
MESSAGES = [{"role": "user", "content": "Plot last week's sign-ups."}]
CODE = {"type": "code_execution_20250825", "name": "code_execution"}

Make = Callable[..., RBAC]


@pytest.fixture
def make(fake_claude: FakeClaude, monkeypatch: pytest.MonkeyPatch) -> Iterator[Make]:
    monkeypatch.setenv("CLAUDE_RBAC_TEST_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)  # policies without workspaces
    built: list[RBAC] = []

    def build(policy: Any, **options: Any) -> RBAC:
        built.append(RBAC(policy, base_url=fake_claude.url, **options))
        return built[-1]

    yield build
    for rbac in built:
        rbac.close()


WORKSPACES = {
    "workspaces": {
        "prod": {"api_key": {"env": "CLAUDE_RBAC_TEST_KEY"}, "id": "wrkspc_prod01"},
        "lab": {"api_key": {"env": "CLAUDE_RBAC_TEST_KEY"}},
    },
    "default_workspace": "prod",
    "roles": {
        "user": {"models": ["claude-haiku-*"]},
        "intern": {"models": ["claude-haiku-*"], "workspace": "lab"},
    },
}


class TestTheWorkspace:
    def test_a_request_may_name_its_own_workspace(self, make: Make, fake_claude: FakeClaude) -> None:
        claude = make(WORKSPACES).client(Principal("uma", "user"))
        claude.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES, workspace_id="wrkspc_prod01")  # type: ignore[arg-type]
        assert fake_claude.requests[-1].workspace_id == "wrkspc_prod01"

    @pytest.mark.parametrize("where", ["header", "body"])
    def test_a_request_naming_another_workspace_is_refused(
        self, make: Make, fake_claude: FakeClaude, where: str
    ) -> None:
        claude = make(WORKSPACES).client(Principal("uma", "user"))
        asked: dict[str, Any] = (
            {"workspace_id": "wrkspc_finance"} if where == "header" else {"extra_body": {"workspace_id": "wrkspc_x"}}
        )
        with pytest.raises(AccessDenied) as denied:
            claude.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES, **asked)
        assert denied.value.reason == "workspace_not_allowed"
        assert fake_claude.requests == []

    def test_a_workspace_without_an_id_admits_none(self, make: Make, fake_claude: FakeClaude) -> None:
        claude = make(WORKSPACES).client(Principal("ivy", "intern"))
        with pytest.raises(AccessDenied) as denied:
            claude.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES, workspace_id="wrkspc_prod01")  # type: ignore[arg-type]
        assert denied.value.reason == "workspace_not_allowed"
        claude.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)  # naming none is fine
        assert fake_claude.count() == 1

    def test_a_batch_names_it_in_its_header_too(self, make: Make, fake_claude: FakeClaude) -> None:
        claude = make(WORKSPACES).client(Principal("uma", "user"))
        request = {"custom_id": "a", "params": {"model": HAIKU, "max_tokens": 10, "messages": MESSAGES}}
        with pytest.raises(AccessDenied):
            claude.messages.batches.create(requests=[request], workspace_id="wrkspc_other")  # type: ignore[list-item]
        claude.messages.batches.create(requests=[request], workspace_id="wrkspc_prod01")  # type: ignore[list-item]
        assert [r.workspace_id for r in fake_claude.requests] == ["wrkspc_prod01"]


CODERS = {
    "roles": {
        "user": {"models": ["claude-*"]},
        "analyst": {"inherits": "user", "tools": ["code_execution"]},
    }
}


class TestContainers:
    def test_a_granted_code_execution_tool_may_reuse_its_container(self, make: Make, fake_claude: FakeClaude) -> None:
        claude = make(CODERS).client(Principal("ana", "analyst"))
        answer = claude.messages.create(
            model=HAIKU, max_tokens=10, messages=MESSAGES, tools=[CODE], container="container_0123456789abcdef"
        )
        assert answer.container is not None
        assert fake_claude.requests[-1].json["container"] == "container_0123456789abcdef"

    @pytest.mark.parametrize(
        ("role", "tools"), [("analyst", []), ("user", []), ("user", [CODE])], ids=["no tool", "no grant", "refused"]
    )
    def test_container_reuse_needs_the_granted_tool_in_the_request(
        self, make: Make, fake_claude: FakeClaude, role: str, tools: list[Any]
    ) -> None:
        claude = make(CODERS).client(Principal("someone", role))
        with pytest.raises(AccessDenied) as denied:
            claude.messages.create(
                model=HAIKU, max_tokens=10, messages=MESSAGES, tools=tools, container="container_0123456789abcdef"
            )
        assert denied.value.reason == "tool_not_allowed"
        assert fake_claude.requests == []


def advisor(model: str = OPUS) -> dict[str, Any]:
    return {"type": "advisor_20260301", "name": "advisor", "model": model}


def test_the_advisor_tool_needs_its_grant_as_well_as_its_model(make: Make, fake_claude: FakeClaude) -> None:
    """The model check (#14) and the tool check agree: an advisor needs both."""
    roles = {
        "power": {"models": ["claude-*"], "max_tokens": 1024},
        "advisor": {"inherits": "power", "tools": ["advisor"]},
    }
    rbac = make({"roles": roles})
    with pytest.raises(AccessDenied) as denied:
        rbac.client(Principal("pat", "power")).messages.create(
            model=HAIKU, max_tokens=10, messages=MESSAGES, extra_body={"tools": [advisor()]}
        )
    assert denied.value.reason == "tool_not_allowed"
    assert "advisor_20260301" in denied.value.message
    rbac.client(Principal("ada", "advisor")).messages.create(
        model=HAIKU, max_tokens=10, messages=MESSAGES, extra_body={"tools": [advisor()]}
    )
    assert fake_claude.requests[-1].json["tools"][0]["model"] == OPUS


def test_the_stable_api_is_governed_like_the_beta_one(make: Make, fake_claude: FakeClaude) -> None:
    claude = make(Policy.default()).client(Principal("uma", "user"))
    with pytest.raises(AccessDenied) as denied:
        claude.messages.create(
            model=HAIKU,
            max_tokens=10,
            messages=MESSAGES,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    assert denied.value.reason == "tool_not_allowed"
    with pytest.raises(AccessDenied) as too_fast:
        claude.messages.count_tokens(model=HAIKU, messages=MESSAGES, speed="fast")
    assert too_fast.value.reason == "speed_not_allowed"
    assert fake_claude.requests == []


@pytest.mark.parametrize("header", ["anthropic-beta", "Anthropic-Beta", "ANTHROPIC-BETA"])
def test_a_beta_in_any_header_spelling_is_governed(make: Make, fake_claude: FakeClaude, header: str) -> None:
    claude = make(Policy.default()).client(Principal("uma", "user"))
    with pytest.raises(AccessDenied) as denied:
        claude.messages.create(
            model=HAIKU, max_tokens=10, messages=MESSAGES, extra_headers={header: "files-api-2025-04-14, x"}
        )
    assert denied.value.reason == "beta_not_allowed"
    assert fake_claude.requests == []


def test_the_beta_the_sdk_adds_to_count_tokens_needs_no_grant(make: Make, fake_claude: FakeClaude) -> None:
    claude = make(Policy.default()).client(Principal("uma", "user"))
    claude.beta.messages.count_tokens(model=HAIKU, messages=MESSAGES)
    assert fake_claude.requests[-1].betas == ["token-counting-2024-11-01"]


@pytest.mark.parametrize("header", ["anthropic-beta", "Anthropic-Workspace-Id"])
def test_a_governed_client_may_not_send_them_on_every_call(make: Make, header: str) -> None:
    """A client-wide default header is added after the governor ran: it would be sent unseen."""
    rbac = make(Policy.default())
    client = rbac.client(Principal("uma", "user"))
    with pytest.raises(TypeError, match="per call"):
        client.with_options(default_headers={header: "x"})
    with pytest.raises(TypeError, match="per call"):
        make(Policy.default(), client_options={"default_headers": {header: "x"}})


def test_shadow_mode_records_the_refusal_and_sends_the_call(
    make: Make, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter
) -> None:
    rbac = make({"mode": "shadow", "roles": {"user": {"models": ["claude-*"]}}})
    rbac.client(Principal("uma", "user")).messages.create(
        model=HAIKU, max_tokens=10, messages=MESSAGES, extra_body={"speed": "fast"}
    )
    assert fake_claude.requests[-1].json["speed"] == "fast"
    (decision,) = [span for span in span_exporter.get_finished_spans() if span.name == "claude_rbac.authorize"]
    attributes = dict(decision.attributes or {})
    assert (attributes["claude_rbac.decision.reason"], attributes["claude_rbac.enforced"]) == (
        "speed_not_allowed",
        False,
    )
    assert attributes["claude_rbac.speed"] == "fast"
