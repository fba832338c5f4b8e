"""The audit trail of a Django request: one decision span per guard, and the SDK call span annotated."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from claude_rbac.testing import FakeClaude

from .project import SONNET, USERS
from .support import login


def spans(exporter: InMemorySpanExporter, name: str) -> list[Any]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def test_allowed_request_records_the_guard_and_the_call(
    client: Any, make_user: Any, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter
) -> None:
    user = make_user(groups=[USERS])
    response = login(user).post(
        "/api/chat", data=json.dumps({"prompt": "secret prompt"}), content_type="application/json"
    )
    assert response.status_code == 200
    guard, call_decision = spans(span_exporter, "claude_rbac.authorize")
    assert guard.attributes["claude_rbac.decision"] == "allow"
    assert guard.attributes["claude_rbac.required_role"] == "user"
    assert guard.attributes["enduser.id"] == str(user.pk)
    assert guard.attributes["user.roles"] == ("user",)
    assert guard.attributes["claude_rbac.route"] == "api/chat"
    assert call_decision.attributes["gen_ai.request.model"] == "claude-haiku-4-5"
    (sdk_call,) = [span for span in span_exporter.get_finished_spans() if span.name != "claude_rbac.authorize"]
    assert sdk_call.attributes["claude_rbac.decision"] == "allow"
    assert sdk_call.attributes["enduser.id"] == str(user.pk)
    everything = json.dumps([dict(span.attributes or {}) for span in span_exporter.get_finished_spans()])
    assert "secret prompt" not in everything
    assert fake_claude.count() == 1


def test_denials_are_recorded_and_send_nothing(
    client: Any, make_user: Any, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter
) -> None:
    assert client.get("/admin").status_code == 401
    viewer = make_user(role="viewer")
    assert login(viewer).get("/admin").status_code == 403
    power = login(make_user(role="power"))
    denied_model = power.post("/api/long", data=json.dumps({"model": SONNET}), content_type="application/json")
    assert denied_model.status_code == 403
    anonymous, insufficient, route_allowed, model_denied = spans(span_exporter, "claude_rbac.authorize")
    assert (anonymous.attributes["claude_rbac.decision"], anonymous.attributes["claude_rbac.decision.reason"]) == (
        "deny",
        "unauthenticated",
    )
    assert "enduser.id" not in anonymous.attributes
    assert insufficient.attributes["claude_rbac.decision.reason"] == "role_insufficient"
    assert insufficient.attributes["claude_rbac.required_role"] == "admin"
    assert insufficient.attributes["enduser.id"] == str(viewer.pk)
    assert route_allowed.attributes["claude_rbac.decision"] == "allow"
    assert model_denied.attributes["claude_rbac.decision.reason"] == "model_not_allowed"
    assert model_denied.attributes["gen_ai.request.model"] == SONNET
    decisions = [anonymous, insufficient, route_allowed, model_denied]
    assert all(span.status.status_code.name == "UNSET" for span in decisions)  # a deny is not an error
    (sdk_call,) = [span for span in span_exporter.get_finished_spans() if span not in decisions]
    assert sdk_call.attributes["claude_rbac.decision.reason"] == "model_not_allowed"
    assert fake_claude.count() == 0
