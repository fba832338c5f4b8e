"""Shadow mode records every decision as if enforced, and blocks nothing; plus the opt-in log event."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from claude_rbac import RBAC, AccessDenied, Policy, Principal
from claude_rbac.testing import FakeClaude, InMemoryMetrics

KEY = "sk-ant-api03-shadow-tests-00000000000000000000000000000-SHDW"
MESSAGES = [{"role": "user", "content": "hi"}]
STRICT = {
    "roles": {
        "viewer": {"allowed": False},
        "user": {"inherits": "viewer", "models": ["claude-haiku-*"], "max_tokens": 100, "rpm": 2},
    }
}


def decisions(exporter: InMemorySpanExporter) -> list[dict[str, Any]]:
    return [dict(s.attributes or {}) for s in exporter.get_finished_spans() if s.name == "claude_rbac.authorize"]


def test_shadow_never_blocks_and_records_what_it_would_have_blocked(
    fake_claude: FakeClaude, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetrics
) -> None:
    rbac = RBAC(STRICT, api_key=KEY, base_url=fake_claude.url, mode="shadow", meter_provider=metric_reader.provider)
    alice, vera = Principal("alice", "user"), Principal("vera", "viewer")
    assert not rbac.require(vera, "user").allowed  # returned, not raised
    rbac.client(vera).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
    rbac.client(alice).messages.create(model="claude-opus-4-7", max_tokens=10, messages=MESSAGES)
    rbac.client(alice).messages.create(model="claude-haiku-4-5", max_tokens=5000, messages=MESSAGES)
    for _ in range(3):
        rbac.client(alice).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
    rbac.client(alice).models.list()
    # Everything went through, unchanged: no clamp either.
    assert fake_claude.count() == 6
    assert fake_claude.calls()[2].json["max_tokens"] == 5000
    assert fake_claude.count("/v1/models", "GET") == 1
    recorded = decisions(span_exporter)
    assert all(attrs["claude_rbac.enforced"] is False for attrs in recorded)
    reasons = [attrs["claude_rbac.decision.reason"] for attrs in recorded]
    assert reasons == [
        "role_insufficient",
        "api_access_not_allowed",
        "model_not_allowed",
        "clamped",
        "allowed",
        "rate_limited",  # rpm=2: the third and fourth would have been refused
        "rate_limited",
        "endpoint_not_allowed",
    ]
    denied = [(a, v) for a, v in metric_reader.points("claude_rbac.decisions") if a["claude_rbac.decision"] == "deny"]
    assert sum(v for _, v in denied) == 6


def test_shadow_per_role_in_the_policy(fake_claude: FakeClaude, span_exporter: InMemorySpanExporter) -> None:
    policy = {
        "roles": {"trial": {"models": ["claude-haiku-*"], "mode": "shadow"}, "user": {"models": ["claude-haiku-*"]}}
    }
    rbac = RBAC(policy, api_key=KEY, base_url=fake_claude.url)
    rbac.client(Principal("t", "trial")).messages.create(model="claude-opus-4-7", max_tokens=10, messages=MESSAGES)
    with pytest.raises(AccessDenied):
        rbac.client(Principal("u", "user")).messages.create(model="claude-opus-4-7", max_tokens=10, messages=MESSAGES)
    assert fake_claude.count() == 1
    assert [a["claude_rbac.enforced"] for a in decisions(span_exporter)] == [False, True]


def test_policy_level_mode(fake_claude: FakeClaude) -> None:
    rbac = RBAC({**STRICT, "mode": "shadow"}, api_key=KEY, base_url=fake_claude.url)
    rbac.client(Principal("v", "viewer")).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
    assert fake_claude.count() == 1
    enforcing = RBAC({**STRICT, "mode": "shadow"}, api_key=KEY, base_url=fake_claude.url, mode="enforce")
    with pytest.raises(AccessDenied):
        enforcing.client(Principal("v", "viewer")).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES
        )


def test_denials_as_otel_log_events(fake_claude: FakeClaude) -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    rbac = RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url, logger_provider=provider)
    rbac.client(Principal("a", "user")).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
    with pytest.raises(AccessDenied):
        rbac.client(Principal("a", "user")).messages.create(model="claude-opus-4-7", max_tokens=10, messages=MESSAGES)
    (event,) = exporter.get_finished_logs()
    assert event.log_record.event_name == "claude_rbac.access.denied"
    assert dict(event.log_record.attributes or {})["claude_rbac.decision.reason"] == "model_not_allowed"
    assert event.log_record.body == "Role 'user' may not use model 'claude-opus-4-7'."
