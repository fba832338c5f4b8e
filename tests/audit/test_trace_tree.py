"""One trace shape in every integration: the server span, the route guard's decision, the SDK's call span
with the ``claude_rbac.*`` attributes, and the call's decision under it, for every outcome.

Each test runs for WSGI, Flask, ASGI, Starlette, FastAPI and Django (the ``framework`` fixture), drives
the framework's own test client, reaches FakeClaude over real HTTP through the real SDK, and reads back
what a collector would get: spans, the two counters, the ``claude_rbac`` log records and the OTel log events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import StatusCode

from claude_rbac import RBAC
from claude_rbac.policy import fingerprint
from claude_rbac.testing import FakeClaude
from tests.support.redis import free_port

from .apps.common import HAIKU, OPUS, Harness
from .conftest import POLICY
from .server_spans import ASGIServerSpans
from .trail import (
    DENIED_EVENT,
    SDK_CALL,
    SENTINEL_KEY,
    SENTINEL_PROMPT,
    AuditTrail,
    assert_direct_links,
    attributes,
    render,
    same_trace,
    subset,
)

MakeApp = Callable[..., Harness]
KEY_ID = fingerprint(SENTINEL_KEY)


def tree(trail: AuditTrail, app: Harness) -> list[str]:
    return render(trail.spans, collapse=app.framework_spans)


def allowed_call_tree(method_path: str, outcome: str) -> list[str]:
    """The tree of a request the route guard let through, whose Claude call got ``outcome``."""
    return [
        f"SERVER {method_path} -> allow/allowed",
        "  INTERNAL claude_rbac.authorize -> allow/allowed",
        f"  CLIENT anthropic.messages.create -> {outcome}",
        f"    INTERNAL claude_rbac.authorize -> {outcome}",
    ]


def error_code(reply: Any) -> str:
    return str(reply.json()["error"]["error_code"])


def guard_attributes(app: Harness, path: str = "/chat") -> dict[str, Any]:
    return {
        "claude_rbac.required_role": "user",
        "claude_rbac.route": app.routes[path],
        "claude_rbac.api_key.id": KEY_ID,
        "claude_rbac.workspace": "default",
        "claude_rbac.enforced": True,
    }


def call_attributes(app: Harness, path: str = "/chat") -> dict[str, Any]:
    return {
        "enduser.id": "uma",
        "user.roles": ("user",),
        "claude_rbac.role": "user",
        "claude_rbac.route": app.routes[path],
        "claude_rbac.operation": "messages.create",
        "claude_rbac.api_key.id": KEY_ID,
        "claude_rbac.workspace": "default",
        "claude_rbac.enforced": True,
    }


def assert_call_decision_matches_sdk_span(trail: AuditTrail) -> None:
    """The decision span under the SDK's call span carries the same claude_rbac attributes (one source of truth)."""
    for decision in trail.call_decision_spans():
        (call,) = [span for span in trail.spans if span.context.span_id == decision.parent.span_id]  # type: ignore[union-attr]
        ours = {name: value for name, value in attributes(call).items() if name in attributes(decision)}
        assert ours == attributes(decision)


def assert_events_match(trail: AuditTrail) -> None:
    """One OTel log event per denial, with the decision span's attributes, in the context of the span it explains."""
    denials = [span for span in trail.spans if attributes(span).get("claude_rbac.decision") == "deny"]
    decisions = [span for span in denials if span.name == "claude_rbac.authorize"]
    events = trail.events()
    assert len(events) == len(decisions)
    for event, decision in zip(events, decisions, strict=True):
        assert event.log_record.event_name == DENIED_EVENT
        assert dict(event.log_record.attributes or {}) == attributes(decision)
        assert decision.parent is not None
        assert (event.log_record.trace_id, event.log_record.span_id) == (
            decision.context.trace_id,
            decision.parent.span_id,
        )


def test_allow(make_app: MakeApp, trail: AuditTrail, fake_claude: FakeClaude) -> None:
    app = make_app()
    reply = app.post("/chat", "uma", {"prompt": SENTINEL_PROMPT})
    assert reply.status == 200, reply.body
    assert reply.json()["model"] == HAIKU
    assert [call.json["max_tokens"] for call in fake_claude.calls()] == [100]

    assert tree(trail, app) == allowed_call_tree("POST /chat", "allow/allowed")
    assert_direct_links(trail)
    (server,) = trail.server_spans()
    subset(
        {
            "enduser.id": "uma",
            "user.roles": ("user",),
            "claude_rbac.decision": "allow",
            "claude_rbac.decision.reason": "allowed",
        },
        server,
    )
    (guard,) = trail.guard_spans()
    subset({**guard_attributes(app), "enduser.id": "uma", "user.roles": ("user",), "claude_rbac.role": "user"}, guard)
    assert guard.status.status_code is StatusCode.UNSET
    (call,) = trail.named(SDK_CALL)
    subset(
        {
            **call_attributes(app),
            "gen_ai.request.model": HAIKU,
            "claude_rbac.max_tokens.requested": 100,
            "claude_rbac.max_tokens.effective": 100,
            "gen_ai.usage.output_tokens": 10,
        },
        call,
    )
    assert_call_decision_matches_sdk_span(trail)

    assert trail.decision_counts() == {("allow", "allowed", "user", ""): 1, ("allow", "allowed", "user", HAIKU): 1}
    tokens = {point["gen_ai.token.type"]: (point, value) for point, value in trail.points("claude_rbac.tokens")}
    assert tokens["output"] == (
        {"claude_rbac.role": "user", "gen_ai.request.model": HAIKU, "gen_ai.token.type": "output"},
        10,
    )
    assert tokens["input"][1] >= 1
    assert trail.denial_records() == []
    assert trail.events() == []
    trail.assert_no_secrets()


def test_route_guard_denials(make_app: MakeApp, trail: AuditTrail, fake_claude: FakeClaude) -> None:
    app = make_app()
    viewer = app.post("/chat", "vera", {"prompt": SENTINEL_PROMPT})
    anonymous = app.post("/chat", None, {"prompt": SENTINEL_PROMPT})
    assert (viewer.status, error_code(viewer)) == (403, "role_insufficient")
    assert (anonymous.status, error_code(anonymous)) == (401, "unauthenticated")
    assert fake_claude.requests == []

    # Exactly one decision span per denial, and no SDK span: nothing was sent.
    assert tree(trail, app) == [
        "SERVER POST /chat -> deny/role_insufficient",
        "  INTERNAL claude_rbac.authorize -> deny/role_insufficient",
        "SERVER POST /chat -> deny/unauthenticated",
        "  INTERNAL claude_rbac.authorize -> deny/unauthenticated",
    ]
    assert_direct_links(trail)
    vera_server, anonymous_server = trail.server_spans()
    subset({"enduser.id": "vera", "user.roles": ("viewer",)}, vera_server)
    assert "enduser.id" not in attributes(anonymous_server)
    assert "user.roles" not in attributes(anonymous_server)
    vera_guard, anonymous_guard = trail.guard_spans()
    subset({**guard_attributes(app), "enduser.id": "vera", "claude_rbac.role": "viewer"}, vera_guard)
    subset(guard_attributes(app), anonymous_guard)
    assert all(span.status.status_code is StatusCode.UNSET for span in trail.guard_spans())  # a deny is no error

    assert trail.decision_counts() == {
        ("deny", "role_insufficient", "viewer", ""): 1,
        ("deny", "unauthenticated", "", ""): 1,
    }
    assert trail.points("claude_rbac.tokens") == []
    route = app.routes["/chat"]
    revision = attributes(vera_guard)["claude_rbac.policy.revision"]  # the log names the span's revision
    assert attributes(anonymous_guard)["claude_rbac.policy.revision"] == revision
    assert trail.denial_records() == [
        {
            "reason": "role_insufficient",
            "role": "viewer",
            "model": None,
            "route": route,
            "enforced": True,
            "revision": revision,
            "user": "vera",
        },
        {
            "reason": "unauthenticated",
            "role": None,
            "model": None,
            "route": route,
            "enforced": True,
            "revision": revision,
        },
    ]
    assert_events_match(trail)
    trail.assert_no_secrets()


def test_model_denied_by_the_client(make_app: MakeApp, trail: AuditTrail, fake_claude: FakeClaude) -> None:
    app = make_app()
    reply = app.post("/chat", "uma", {"prompt": SENTINEL_PROMPT, "model": OPUS})
    assert (reply.status, error_code(reply)) == (403, "model_not_allowed")
    assert fake_claude.requests == []

    assert tree(trail, app) == allowed_call_tree("POST /chat", "deny/model_not_allowed")
    assert_direct_links(trail)
    (decision,) = trail.call_decision_spans()
    assert decision.status.status_code is StatusCode.UNSET
    (call,) = trail.named(SDK_CALL)
    subset({**call_attributes(app), "gen_ai.request.model": OPUS}, call)  # the exact name, on the span only
    assert_call_decision_matches_sdk_span(trail)
    # The server span keeps the route guard's decision; the refused call is on the SDK span.
    (server,) = trail.server_spans()
    subset({"enduser.id": "uma", "claude_rbac.decision": "allow"}, server)

    assert trail.decision_counts() == {
        ("allow", "allowed", "user", ""): 1,
        ("deny", "model_not_allowed", "user", "_other"): 1,  # a refused name never becomes a metric label
    }
    assert trail.denial_records() == [
        {
            "reason": "model_not_allowed",
            "role": "user",
            "model": OPUS,
            "route": app.routes["/chat"],
            "enforced": True,
            "revision": attributes(decision)["claude_rbac.policy.revision"],
            "user": "uma",
        }
    ]
    assert_events_match(trail)
    trail.assert_no_secrets()


def test_clamp(make_app: MakeApp, trail: AuditTrail, fake_claude: FakeClaude) -> None:
    app = make_app()
    reply = app.post("/chat", "uma", {"prompt": SENTINEL_PROMPT, "max_tokens": 5000})
    assert reply.status == 200, reply.body
    assert [call.json["max_tokens"] for call in fake_claude.calls()] == [512]

    assert tree(trail, app) == allowed_call_tree("POST /chat", "allow/clamped")
    assert_direct_links(trail)
    (call,) = trail.named(SDK_CALL)
    subset(
        {
            **call_attributes(app),
            "claude_rbac.max_tokens.requested": 5000,
            "claude_rbac.max_tokens.effective": 512,
            "gen_ai.request.max_tokens": 512,  # what was sent, corrected on the SDK's own attribute
        },
        call,
    )
    assert_call_decision_matches_sdk_span(trail)
    assert trail.decision_counts() == {("allow", "allowed", "user", ""): 1, ("allow", "clamped", "user", HAIKU): 1}
    assert trail.denial_records() == []
    trail.assert_no_secrets()


def test_rate_limit(make_app: MakeApp, trail: AuditTrail, fake_claude: FakeClaude, storage: str) -> None:
    app = make_app(storage=storage)  # the user role has rpm = 2
    replies = [app.post("/chat", "uma", {"prompt": SENTINEL_PROMPT}) for _ in range(3)]
    assert [reply.status for reply in replies] == [200, 200, 429]
    assert error_code(replies[2]) == "rate_limited"
    assert int(replies[2].headers["retry-after"]) >= 1
    assert fake_claude.count() == 2

    last_server = trail.server_spans()[-1]
    assert render(same_trace(trail.spans, last_server), collapse=app.framework_spans) == allowed_call_tree(
        "POST /chat", "deny/rate_limited"
    )
    assert_direct_links(trail)
    assert [attributes(span)["claude_rbac.decision.reason"] for span in trail.call_decision_spans()] == [
        "allowed",
        "allowed",
        "rate_limited",
    ]
    assert_call_decision_matches_sdk_span(trail)
    assert trail.decision_counts() == {
        ("allow", "allowed", "user", ""): 3,
        ("allow", "allowed", "user", HAIKU): 2,
        ("deny", "rate_limited", "user", HAIKU): 1,
    }
    assert [record["reason"] for record in trail.denial_records()] == ["rate_limited"]
    assert_events_match(trail)
    trail.assert_no_secrets()


def test_storage_outage_fails_closed(make_app: MakeApp, trail: AuditTrail, fake_claude: FakeClaude) -> None:
    down = f"redis://127.0.0.1:{free_port()}"  # nothing listens there
    app = make_app(storage=down)
    reply = app.post("/chat", "uma", {"prompt": SENTINEL_PROMPT})
    assert (reply.status, error_code(reply)) == (503, "backend_unavailable")
    assert fake_claude.requests == []

    assert tree(trail, app) == allowed_call_tree("POST /chat", "deny/backend_unavailable")
    assert_direct_links(trail)
    (decision,) = trail.call_decision_spans()
    assert (decision.status.status_code, decision.status.description) == (StatusCode.ERROR, "StorageFailure")
    (call,) = trail.named(SDK_CALL)
    subset({**call_attributes(app), "claude_rbac.storage_error": True}, call)
    assert_call_decision_matches_sdk_span(trail)
    assert trail.decision_counts() == {
        ("allow", "allowed", "user", ""): 1,
        ("deny", "backend_unavailable", "user", HAIKU): 1,
    }
    assert [record["reason"] for record in trail.denial_records()] == ["backend_unavailable"]
    assert any("fail closed" in record.getMessage() for record in trail.records if record.levelname == "ERROR")
    assert_events_match(trail)
    trail.assert_no_secrets()
    assert down.rsplit(":", 1)[1] not in trail.exported_text()  # no storage URI (it may hold a password)


def test_stream_closed_early(make_app: MakeApp, trail: AuditTrail, fake_claude: FakeClaude) -> None:
    fake_claude.stream_delay = 0.02  # the answer is still coming when the client hangs up
    app = make_app()
    reply = app.stream_first_chunk("/stream", "uma", {"prompt": SENTINEL_PROMPT})
    assert reply.status == 200
    assert reply.body.startswith(b"data: ")
    wait_for(lambda: fake_claude.aborted_streams == 1)
    assert fake_claude.count() == 1

    assert tree(trail, app) == allowed_call_tree("POST /stream", "allow/allowed")
    assert_direct_links(trail)
    (call,) = trail.named(SDK_CALL)
    subset({**call_attributes(app, "/stream"), "gen_ai.request.stream": True}, call)
    assert call.status.status_code is StatusCode.UNSET  # the application stopped reading: not an error
    assert "gen_ai.usage.output_tokens" not in attributes(call)  # the final usage never came
    assert_call_decision_matches_sdk_span(trail)
    assert trail.decision_counts() == {("allow", "allowed", "user", ""): 1, ("allow", "allowed", "user", HAIKU): 1}
    assert {point["claude_rbac.role"] for point, _ in trail.points("claude_rbac.tokens")} <= {"user"}
    trail.assert_no_secrets()


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_fastapi_under_an_asgi_instrumentation(trail: AuditTrail, fake_claude: FakeClaude, key_prefix: str) -> None:
    """FastAPI's own tracing off, an ASGI instrumentation around the app instead: the same tree."""
    from .apps.asgi_app import StarletteHarness
    from .apps.fastapi_app import ROUTES, create_app

    rbac = RBAC(POLICY, key_prefix=key_prefix, base_url=fake_claude.url, **trail.rbac_options())
    app = StarletteHarness("fastapi", ASGIServerSpans(create_app(rbac, telemetry={"tracing": False})), rbac, ROUTES)
    try:
        assert app.post("/chat", "uma", {"prompt": SENTINEL_PROMPT}).status == 200
        assert app.post("/chat", "vera", {"prompt": SENTINEL_PROMPT}).status == 403
    finally:
        app.close()
    assert tree(trail, app) == [
        *allowed_call_tree("POST /chat", "allow/allowed"),
        "SERVER POST /chat -> deny/role_insufficient",
        "  INTERNAL claude_rbac.authorize -> deny/role_insufficient",
    ]
    assert_direct_links(trail)
    trail.assert_no_secrets()
