"""The fields the governor understands (issue #15): every parameter of the installed SDK's Messages endpoints is
either governed or listed as harmless, the list is documented, and a field nobody listed is recorded, logged
once, and refused under ``strict``. Also: how the new policy keys are validated, inherited and defaulted."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from anthropic.types import message_count_tokens_params, message_create_params
from anthropic.types.beta import message_count_tokens_params as beta_count_tokens_params
from anthropic.types.beta import message_create_params as beta_create_params
from anthropic.types.beta.messages import batch_create_params as beta_batch_create_params
from anthropic.types.messages import batch_create_params
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from claude_rbac import RBAC, AccessDenied, Policy, PolicyError, Principal
from claude_rbac.policy import (
    DEFAULT_GRANTS,
    GOVERNED_FIELDS,
    GRANT_KEYS,
    HARMLESS_FIELDS,
    KNOWN_FIELDS,
    TOOL_FAMILIES,
    probe,
    tool_family,
)
from claude_rbac.policy._fields import BATCH_FIELDS
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-known-fields-tests-0000000000000000000000000-KNFD"
HAIKU = "claude-haiku-4-5"
MESSAGES = [{"role": "user", "content": "Hello"}]
DOC = Path(__file__).parents[1] / "docs" / "policy.md"
SDK_MODULES = {
    "messages.create": (message_create_params, beta_create_params),
    "messages.count_tokens": (message_count_tokens_params, beta_count_tokens_params),
    "messages.batches.create": (batch_create_params, beta_batch_create_params),
}


def sdk_parameters(module: Any) -> set[str]:
    """Every key of every ``*Params`` TypedDict a module of the installed SDK defines (batches: and a request's)."""
    found: set[str] = set()
    for value in vars(module).values():
        is_params = isinstance(value, type) and ("Params" in value.__name__ or value.__name__ == "Request")
        if is_params and value.__module__ == module.__name__:
            found.update(getattr(value, "__required_keys__", ()), getattr(value, "__optional_keys__", ()))
    return found


@pytest.mark.parametrize("operation", SDK_MODULES)
def test_every_parameter_the_installed_sdk_sends_is_governed_or_listed_as_harmless(operation: str) -> None:
    """An SDK upgrade that adds a Messages parameter fails here until someone decides what it is."""
    parameters = set().union(*(sdk_parameters(module) for module in SDK_MODULES[operation]))
    assert {"model", "messages"} <= parameters or operation == "messages.batches.create"
    undecided = parameters - KNOWN_FIELDS - BATCH_FIELDS
    assert undecided == set(), f"decide each: govern it (policy/_fields.py) or list it in HARMLESS_FIELDS: {undecided}"


def test_no_field_is_both_governed_and_harmless() -> None:
    assert set(GOVERNED_FIELDS) & set(HARMLESS_FIELDS) == set()


def test_the_policy_reference_documents_every_field_and_key() -> None:
    text = DOC.read_text()
    for name in KNOWN_FIELDS:
        assert f"`{name}`" in text, name
    for key in (*GRANT_KEYS, "strict", "revision", "batches", "prices"):
        assert re.search(rf"^#+ .*`{key}`", text, re.M), f"docs/policy.md has no section for {key}"


@pytest.mark.parametrize(
    ("document", "role", "refused"),
    [
        ({"strict": True, "roles": {"r": {"models": ["claude-*"]}}}, "r", True),
        ({"roles": {"r": {"models": ["claude-*"], "strict": True}}}, "r", True),
        ({"roles": {"p": {"models": ["claude-*"], "strict": True}, "r": {"inherits": "p"}}}, "r", True),
        ({"strict": True, "roles": {"r": {"models": ["claude-*"], "strict": False}}}, "r", False),
        ({"roles": {"r": {"models": ["claude-*"]}}}, "r", False),
    ],
    ids=["top-level", "role", "inherited", "role overrides", "default"],
)
def test_strict_refuses_a_field_nobody_listed(
    fake_claude: FakeClaude, document: dict[str, Any], role: str, refused: bool
) -> None:
    with RBAC(document, api_key=KEY, base_url=fake_claude.url) as rbac:
        claude = rbac.client(Principal("sam", role))
        extra = {"router_hint": "cheapest", "stop_sequences": ["END"]}  # one unknown field, one harmless one
        if refused:
            with pytest.raises(AccessDenied) as denied:
                claude.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES, extra_body=extra)
            assert denied.value.reason == "field_not_allowed"
            assert "'router_hint'" in denied.value.message
            assert fake_claude.requests == []
        else:
            claude.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES, extra_body=extra)
            assert fake_claude.requests[-1].json["router_hint"] == "cheapest"


def test_an_unknown_field_is_recorded_on_the_span_and_logged_once(
    fake_claude: FakeClaude, span_exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    with RBAC({"roles": {"r": {"models": ["claude-*"]}}}, api_key=KEY, base_url=fake_claude.url) as rbac:
        claude = rbac.client(Principal("sam", "r"))
        with caplog.at_level(logging.WARNING, logger="claude_rbac"):
            for _ in range(3):
                claude.messages.create(
                    model=HAIKU, max_tokens=10, messages=MESSAGES, extra_body={"router_hint": 1, "fanout": 2}
                )
    spans = [span for span in span_exporter.get_finished_spans() if span.name == "claude_rbac.authorize"]
    assert [dict(span.attributes or {})["claude_rbac.unknown_fields"] for span in spans] == [
        ("router_hint", "fanout")
    ] * 3
    warnings = [record.getMessage() for record in caplog.records if "does not govern" in record.getMessage()]
    assert len(warnings) == 2
    assert any("'router_hint'" in warning for warning in warnings)
    assert fake_claude.count() == 3


def test_a_batch_records_unknown_fields_at_every_level() -> None:
    policy = Policy.from_dict({"strict": True, "roles": {"r": {"models": ["claude-*"]}}})
    params = {"model": HAIKU, "max_tokens": 10, "messages": MESSAGES}
    for body in (
        {"requests": [{"custom_id": "a", "params": params}], "priority_lane": True},
        {"requests": [{"custom_id": "a", "params": params, "ttl": 5}]},
        {"requests": [{"custom_id": "a", "params": {**params, "router_hint": 1}}]},
    ):
        decision = probe(policy, Principal("sam", "r"), body, operation="messages.batches.create").decision
        assert decision.reason == "field_not_allowed"


@pytest.mark.parametrize(
    ("role", "problem"),
    [
        ({"tools": "web search"}, "printable ASCII without spaces"),
        ({"tools": [3]}, "must contain strings"),
        ({"betas": ["a,b"]}, "holds a comma"),
        ({"speeds": {"fast": True}}, "a string or a list of strings"),
        ({"strict": "yes"}, "must be true or false"),
        ({"mcp_servers": [""]}, "1-2048 characters"),
    ],
)
def test_a_bad_grant_is_a_policy_error_naming_the_role_and_key(role: dict[str, Any], problem: str) -> None:
    with pytest.raises(PolicyError) as error:
        Policy.from_dict({"roles": {"r": {"models": ["claude-*"], **role}}})
    (found,) = error.value.problems
    assert (found.role, found.field) == ("r", next(iter(role)))
    assert problem in found.message


def test_a_workspace_id_must_look_like_one() -> None:
    with pytest.raises(PolicyError, match=r"workspaces\.w\.id"):
        Policy.from_dict({"workspaces": {"w": {"api_key": {"env": "K"}, "id": "wrkspc 1"}}, "roles": {}})


def test_grants_are_a_union_over_ancestors_with_least_privilege_defaults() -> None:
    policy = Policy.from_dict(
        {
            "roles": {
                "user": {"models": ["claude-haiku-*"]},
                "power": {"inherits": "user", "tools": ["web_search"], "speeds": ["fast"]},
                "admin": {"inherits": "power", "tools": ["code_execution"]},
                "bare": {"models": ["claude-haiku-*"], "tools": []},
            }
        }
    )
    assert policy.roles["user"].tools == DEFAULT_GRANTS["tools"] == ("custom",)
    assert set(policy.roles["admin"].tools) == {"custom", "web_search", "code_execution"}
    assert set(policy.roles["admin"].speeds) == {"standard", "fast"}
    assert policy.roles["bare"].tools == ()
    assert (policy.roles["user"].betas, policy.roles["user"].mcp_servers, policy.roles["user"].inference_geos) == (
        (),
        (),
        (),
    )


def test_the_default_policy_is_still_the_guides_table() -> None:
    for role in Policy.default().roles.values():
        assert [getattr(role, key) for key in GRANT_KEYS] == [DEFAULT_GRANTS[key] for key in GRANT_KEYS]
        assert role.strict is False


FAMILIES = {
    "web_search_20250305": "web_search",
    "web_fetch_20260318": "web_fetch",
    "code_execution_20260521": "code_execution",
    "bash_20250124": "bash",
    "text_editor_20250728": "text_editor",
    "computer_20251124": "computer",
    "computer_toolset_20260801": "computer",
    "browser_toolset_20260801": "browser",
    "memory_20250818": "memory",
    "tool_search_tool_regex_20251119": "tool_search",
    "tool_search_tool_bm25": "tool_search",
    "advisor_20260301": "advisor",
    "mcp_toolset": "mcp_toolset",
    "custom": "custom",
    "telepathy_20290101": "telepathy",
}


@pytest.mark.parametrize(("tool_type", "family"), FAMILIES.items())
def test_tool_families(tool_type: str, family: str) -> None:
    assert tool_family(tool_type) == family


@given(family=st.sampled_from(TOOL_FAMILIES), date=st.integers(20240101, 20991231))
def test_a_family_grant_admits_every_dated_version_and_nothing_else(family: str, date: int) -> None:
    policy = Policy.from_dict({"roles": {"r": {"models": ["claude-*"], "tools": [family]}}})
    others = [other for other in TOOL_FAMILIES if other not in (family, "custom")]
    for kind, allowed in ((f"{family}_{date}", True), (f"{others[date % len(others)]}_{date}", False)):
        tool = {"type": kind, "name": "t"} if kind != "custom" else {"name": "t"}
        decision = probe(policy, Principal("p", "r"), {"model": HAIKU, "max_tokens": 5, "tools": [tool]}).decision
        assert decision.allowed is allowed, kind


@pytest.mark.parametrize("where", ["header", "body"])
def test_every_value_is_judged_as_sent_not_as_recorded(fake_claude: FakeClaude, where: str) -> None:
    """The span keeps 32 values of at most 256 characters each; the decision reads every value, whole."""
    allowed = [f"beta-{n}" for n in range(40)]
    long = "beta-" + "x" * 300
    policy = {"roles": {"r": {"models": ["claude-*"], "betas": [*allowed, long]}}}
    with RBAC(policy, api_key=KEY, base_url=fake_claude.url) as rbac:
        claude = rbac.client(Principal("sam", "r")).beta.messages
        for betas, refused in (
            ([*allowed, "beta-evil"], True),
            ([long[:-1] + "y"], True),
            ([*allowed, long], False),
        ):
            asked: dict[str, Any] = {"betas": betas} if where == "header" else {"extra_body": {"betas": betas}}
            if refused:
                with pytest.raises(AccessDenied) as denied:
                    claude.create(model=HAIKU, max_tokens=10, messages=MESSAGES, **asked)
                assert denied.value.reason == "beta_not_allowed"
            else:
                claude.create(model=HAIKU, max_tokens=10, messages=MESSAGES, **asked)
    assert fake_claude.count() == 1
