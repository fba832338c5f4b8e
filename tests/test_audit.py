"""Decision spans and the SDK's call span, read back with the OTel SDK's in-memory exporter."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from claude_rbac import RBAC, AccessDenied, Policy, Principal, RateLimited
from claude_rbac.policy import fingerprint
from claude_rbac.testing import FakeClaude, InMemoryMetrics

KEY = "sk-ant-api03-SENTINEL-KEY-audit-0123456789abcdefghijklmnop-QRST"
PROMPT = "SENTINEL-PROMPT the quarterly numbers are confidential"
MESSAGES = [{"role": "user", "content": PROMPT}]
ALICE = Principal("alice", "user")


def authorize_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == "claude_rbac.authorize"]


def sdk_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == "anthropic.messages.create"]


def dump(exporter: InMemorySpanExporter) -> str:
    return "\n".join(span.to_json() for span in exporter.get_finished_spans())


@pytest.fixture
def rbac(fake_claude: FakeClaude) -> RBAC:
    return RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url)


def test_an_allowed_call(rbac: RBAC, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter) -> None:
    rbac.client(ALICE).messages.create(model="claude-haiku-4-5", max_tokens=2000, messages=MESSAGES)
    (decision,) = authorize_spans(span_exporter)
    (call,) = sdk_spans(span_exporter)
    expected = {
        "claude_rbac.decision": "allow",
        "claude_rbac.decision.reason": "clamped",
        "claude_rbac.role": "user",
        "enduser.id": "alice",
        "user.roles": ("user",),
        "claude_rbac.api_key.id": fingerprint(KEY),
        "claude_rbac.workspace": "default",
        "gen_ai.request.model": "claude-haiku-4-5",
        "claude_rbac.max_tokens.requested": 2000,
        "claude_rbac.max_tokens.effective": 512,
        "claude_rbac.enforced": True,
    }
    assert expected.items() <= dict(decision.attributes or {}).items()
    assert decision.kind is SpanKind.INTERNAL
    assert decision.status.status_code is StatusCode.UNSET
    # The SDK's own call span carries the same attributes, and the decision span is its child.
    assert expected.items() <= dict(call.attributes or {}).items()
    assert call.attributes is not None
    assert call.attributes["gen_ai.request.max_tokens"] == 512
    assert decision.parent is not None
    assert decision.parent.span_id == call.context.span_id
    assert len(span_exporter.get_finished_spans()) == 2  # no second chat span


def test_a_denied_call(rbac: RBAC, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter) -> None:
    with pytest.raises(AccessDenied):
        rbac.client(ALICE).messages.create(model="claude-opus-4-7", max_tokens=10, messages=MESSAGES)
    (decision,) = authorize_spans(span_exporter)
    attributes = dict(decision.attributes or {})
    assert attributes["claude_rbac.decision"] == "deny"
    assert attributes["claude_rbac.decision.reason"] == "model_not_allowed"
    assert attributes["gen_ai.request.model"] == "claude-opus-4-7"
    assert decision.status.status_code is StatusCode.UNSET  # a deny is a successful decision
    (call,) = sdk_spans(span_exporter)
    assert dict(call.attributes or {})["claude_rbac.decision"] == "deny"
    assert fake_claude.requests == []


def test_the_route_guard(rbac: RBAC, span_exporter: InMemorySpanExporter) -> None:
    tracer = TracerProvider().get_tracer("test")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("server")
    with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER) as server:
        assert rbac.require(Principal("bob", "power"), "user", route="/chat").allowed
        with pytest.raises(AccessDenied) as info:
            rbac.require(ALICE, "power", route="/admin")
    assert info.value.reason == "role_insufficient"
    spans = authorize_spans(span_exporter)
    assert [dict(span.attributes or {})["claude_rbac.decision"] for span in spans] == ["allow", "deny"]
    assert dict(spans[1].attributes or {})["claude_rbac.required_role"] == "power"
    assert dict(spans[1].attributes or {})["claude_rbac.route"] == "/admin"
    # The server span gets who and what, the last decision winning.
    assert server.attributes is not None
    assert server.attributes["enduser.id"] == "alice"
    assert server.attributes["claude_rbac.decision"] == "deny"
    assert server.attributes["claude_rbac.decision.reason"] == "role_insufficient"


def test_a_rate_limited_call(fake_claude: FakeClaude, span_exporter: InMemorySpanExporter) -> None:
    rbac = RBAC({"roles": {"user": {"models": ["claude-haiku-*"], "rpm": 1}}}, api_key=KEY, base_url=fake_claude.url)
    client = rbac.client(ALICE)
    client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
    with pytest.raises(RateLimited):
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
    reasons = [dict(s.attributes or {})["claude_rbac.decision.reason"] for s in authorize_spans(span_exporter)]
    assert reasons == ["allowed", "rate_limited"]


def test_tracer_provider_is_used_for_both_span_kinds(fake_claude: FakeClaude) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    rbac = RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url, tracer_provider=provider)
    rbac.client(ALICE).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
    assert sorted(span.name for span in exporter.get_finished_spans()) == [
        "anthropic.messages.create",
        "claude_rbac.authorize",
    ]


def test_no_key_and_no_prompt_anywhere(
    rbac: RBAC, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = rbac.client(ALICE)
    client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES) as stream:
        stream.get_final_text()
    errors: list[Exception] = []
    for model in ("claude-opus-4-7", 42):
        try:
            client.messages.create(model=model, max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
        except Exception as exc:
            errors.append(exc)
    exported = dump(span_exporter)
    # Our logger only: the anthropic SDK's own DEBUG logging prints request options, prompts included.
    logged = "\n".join(
        record.getMessage() + json.dumps(getattr(record, "claude_rbac", {}), default=str)
        for record in caplog.records
        if record.name.startswith("claude_rbac")
    )
    raised = "\n".join(f"{error!s} {error!r} {json.dumps(getattr(error, 'to_dict', dict)())}" for error in errors)
    for text in (exported, logged, raised, repr(rbac), repr(client.middleware), repr(rbac.keys.active())):
        assert KEY not in text
        assert KEY[-12:] not in text
        assert "SENTINEL-PROMPT" not in text
    assert fingerprint(KEY) in exported
    assert len(errors) == 2


def test_metrics(fake_claude: FakeClaude, metric_reader: InMemoryMetrics) -> None:
    rbac = RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url, meter_provider=metric_reader.provider)
    client = rbac.client(ALICE)
    client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
    with pytest.raises(AccessDenied):
        client.messages.create(model="claude-opus-4-7", max_tokens=10, messages=MESSAGES)
    decisions = metric_reader.points("claude_rbac.decisions")
    assert (
        {
            "claude_rbac.decision": "allow",
            "claude_rbac.decision.reason": "allowed",
            "claude_rbac.role": "user",
            "gen_ai.request.model": "claude-haiku-4-5",
            "claude_rbac.enforced": True,
        },
        1,
    ) in decisions
    deny = [attrs for attrs, _ in decisions if attrs["claude_rbac.decision"] == "deny"]
    assert deny == [
        {
            "claude_rbac.decision": "deny",
            "claude_rbac.decision.reason": "model_not_allowed",
            "claude_rbac.role": "user",
            "gen_ai.request.model": "_other",
            "claude_rbac.enforced": True,
        }
    ]
    assert all("alice" not in json.dumps(attrs) for attrs, _ in decisions)
    tokens = {attrs["gen_ai.token.type"]: value for attrs, value in metric_reader.points("claude_rbac.tokens")}
    assert tokens["output"] == 10
    assert tokens["input"] >= 1


def test_denials_are_logged_once_with_structure(
    rbac: RBAC, fake_claude: FakeClaude, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="claude_rbac")
    with pytest.raises(AccessDenied):
        rbac.client(ALICE, route="/chat").messages.create(model="claude-opus-4-7", max_tokens=10, messages=MESSAGES)
    (record,) = [r for r in caplog.records if r.name == "claude_rbac"]
    fields: dict[str, Any] = record.claude_rbac  # type: ignore[attr-defined]
    assert fields == {
        "reason": "model_not_allowed",
        "role": "user",
        "model": "claude-opus-4-7",
        "route": "/chat",
        "enforced": True,
        "revision": rbac.policy.revision,
        "user": "alice",
    }


def test_hashed_user_ids(fake_claude: FakeClaude, span_exporter: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError, match="audit_user_id_key"):
        RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url, audit_user_id="hashed")
    hashed = RBAC(
        Policy.default(), api_key=KEY, base_url=fake_claude.url, audit_user_id="hashed", audit_user_id_key="k1"
    )
    off = RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url, audit_user_id="off")
    hashed.require(ALICE, "user")
    off.require(ALICE, "user")
    first, second = (dict(span.attributes or {}) for span in authorize_spans(span_exporter))
    assert "enduser.id" not in first
    assert len(str(first["enduser.pseudo.id"])) == 32
    assert "alice" not in json.dumps(first)
    assert "enduser.id" not in second
    assert "enduser.pseudo.id" not in second
