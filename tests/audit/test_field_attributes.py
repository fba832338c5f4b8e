"""The audit trail of the request fields (issue #15): the decision span names what a call asked for, granted or
refused; the metrics keep bounded labels only (the reason, never a tool type, URL or beta someone made up)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from claude_rbac import RBAC, AccessDenied, Principal, audit
from claude_rbac.testing import FakeClaude
from claude_rbac.testing.otel import InMemoryMetrics

KEY = "sk-ant-api03-field-attributes-tests-000000000000000000000-FATR"
HAIKU = "claude-haiku-4-5"
MESSAGES = [{"role": "user", "content": "Find the changelog."}]
POLICY = {
    "roles": {
        "user": {"models": ["claude-haiku-*"]},
        "power": {"inherits": "user", "tools": ["web_search"], "mcp_servers": ["https://mcp.example.com/*"]},
    }
}
ASKED: dict[str, Any] = {
    "tools": [{"type": "web_search_20250305", "name": "web_search"}, {"name": "lookup", "input_schema": {}}],
    "mcp_servers": [{"type": "url", "url": "https://mcp.example.com/sse?token=hunter2", "name": "docs"}],
    "service_tier": "auto",
    "speed": "standard",
}
EXPECTED = {
    audit.TOOLS: ("web_search_20250305", "custom"),
    audit.MCP_SERVERS: ("https://mcp.example.com/sse",),  # no query: it may hold a token
    audit.SERVICE_TIER: "auto",
    audit.SPEED: "standard",
    audit.BETAS: ("mcp-client-2025-11-20",),
}


def decision_span(exporter: InMemorySpanExporter) -> dict[str, Any]:
    (span,) = [span for span in exporter.get_finished_spans() if span.name == audit.SPAN_NAME]
    return dict(span.attributes or {})


@pytest.mark.parametrize(("role", "decision"), [("power", "allowed"), ("user", "tool_not_allowed")])
def test_the_decision_span_names_the_fields_granted_and_refused(
    fake_claude: FakeClaude, span_exporter: InMemorySpanExporter, role: str, decision: str
) -> None:
    document = {**POLICY, "roles": {**POLICY["roles"], "power": {**POLICY["roles"]["power"], "betas": ["mcp-*"]}}}
    with RBAC(document, api_key=KEY, base_url=fake_claude.url) as rbac:
        claude = rbac.client(Principal("pat", role)).beta.messages
        try:
            claude.create(
                model=HAIKU, max_tokens=10, messages=MESSAGES, extra_body=ASKED, betas=["mcp-client-2025-11-20"]
            )
        except AccessDenied as exc:
            assert exc.reason == decision
    attributes = decision_span(span_exporter)
    assert attributes[audit.REASON] == decision
    # A refused request names every field of its body; the call-wide betas are judged after it, and not reached.
    shown = EXPECTED if decision == "allowed" else {k: v for k, v in EXPECTED.items() if k != audit.BETAS}
    assert {name: attributes.get(name) for name in shown} == shown
    assert "hunter2" not in repr(attributes)


def test_metrics_carry_the_reason_never_a_requested_value(fake_claude: FakeClaude) -> None:
    metrics = InMemoryMetrics()
    with RBAC(POLICY, api_key=KEY, base_url=fake_claude.url, meter_provider=metrics.provider) as rbac:
        claude = rbac.client(Principal("uma", "user"))
        for n in range(5):
            tool = {"type": f"made_up_tool_2026010{n}", "name": "x"}
            with pytest.raises(AccessDenied):
                claude.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES, extra_body={"tools": [tool]})
    points = metrics.points(audit.DECISIONS_METRIC)
    metrics.shutdown()
    assert [(attributes[audit.REASON], value) for attributes, value in points] == [("tool_not_allowed", 5)]
    (attributes, _), *_ = points
    assert set(attributes) == {audit.DECISION, audit.REASON, audit.ROLE, audit.MODEL, audit.ENFORCED}
    assert "made_up" not in repr(points)
    assert fake_claude.requests == []
