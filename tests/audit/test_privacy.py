"""Privacy in every integration: the user id as configured, no content unless the SDK's own option asks, no key.

``audit_user_id="hashed"`` writes a keyed HMAC to ``enduser.pseudo.id`` instead of ``enduser.id``, on
every span that names the user (server, guard, SDK call, call decision), the log record and the log
event; ``"off"`` writes neither. Content is the anthropic SDK's business: its ``content_mode`` option
(or ``ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE=content``) puts prompts on *its* call span, and
nothing of claude_rbac's ever carries one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import pytest
from opentelemetry.trace import SpanKind

from claude_rbac.testing import FakeClaude

from .apps.common import OPUS, Harness
from .trail import AUTHORIZE, SDK_CALL, SENTINEL_PROMPT, AuditTrail, attributes

MakeApp = Callable[..., Harness]
HMAC_KEY = "audit-hmac-key-shared-by-every-worker"


def pseudo_id(user: str) -> str:
    return hmac.new(HMAC_KEY.encode(), user.encode(), hashlib.sha256).hexdigest()[:32]


def user_spans(trail: AuditTrail) -> list[object]:
    """Every span that names the user: the server span, both decision spans, the SDK call span."""
    return [span for span in trail.spans if span.name in (AUTHORIZE, SDK_CALL) or span.kind is SpanKind.SERVER]


def test_hashed_user_ids(make_app: MakeApp, trail: AuditTrail, fake_claude: FakeClaude) -> None:
    app = make_app(audit_user_id="hashed", audit_user_id_key=HMAC_KEY)
    assert app.post("/chat", "uma", {"prompt": SENTINEL_PROMPT}).status == 200
    assert app.post("/chat", "uma", {"prompt": SENTINEL_PROMPT, "model": OPUS}).status == 403
    assert fake_claude.count() == 1

    spans = user_spans(trail)
    assert len(spans) == 2 + 2 + 2 + 2  # per request: server, guard decision, SDK call, call decision
    for span in spans:
        found = attributes(span)  # type: ignore[arg-type]
        assert found["enduser.pseudo.id"] == pseudo_id("uma")
        assert "enduser.id" not in found
        assert found["user.roles"] == ("user",)  # the role is kept: it is what the audit is about
    (record,) = trail.denial_records()
    assert record["user"] == pseudo_id("uma")
    (event,) = trail.events()
    assert dict(event.log_record.attributes or {})["enduser.pseudo.id"] == pseudo_id("uma")
    assert '"uma"' not in trail.exported_text()
    trail.assert_no_secrets()


def test_user_ids_off(make_app: MakeApp, trail: AuditTrail, fake_claude: FakeClaude) -> None:
    app = make_app(audit_user_id="off")
    assert app.post("/chat", "uma", {"prompt": SENTINEL_PROMPT, "model": OPUS}).status == 403
    for span in user_spans(trail):
        found = attributes(span)  # type: ignore[arg-type]
        assert "enduser.id" not in found
        assert "enduser.pseudo.id" not in found
    (record,) = trail.denial_records()
    assert "user" not in record
    assert '"uma"' not in trail.exported_text()
    trail.assert_no_secrets()


def content_on_the_sdk_span_only(trail: AuditTrail) -> None:
    """The opt-in reached the SDK's call span, and nothing of claude_rbac's, nor the metrics or the logs."""
    (call,) = trail.named(SDK_CALL)
    assert SENTINEL_PROMPT in str(attributes(call)["gen_ai.input.messages"])
    assert "gen_ai.output.messages" in attributes(call)
    for span in trail.spans:
        if span is not call:
            assert SENTINEL_PROMPT not in span.to_json(), span.name
    metrics = trail.metrics.reader.get_metrics_data()
    assert metrics is not None
    assert SENTINEL_PROMPT not in metrics.to_json()
    assert all(SENTINEL_PROMPT not in record.getMessage() for record in trail.records)


@pytest.mark.parametrize("framework", ["flask", "fastapi"])
def test_content_is_the_sdks_own_opt_in(
    framework: str, make_app: MakeApp, trail: AuditTrail, fake_claude: FakeClaude
) -> None:
    app = make_app(client_options={"open_telemetry": {"traces": {"content_mode": "content"}}})
    assert app.post("/chat", "uma", {"prompt": SENTINEL_PROMPT}).status == 200
    content_on_the_sdk_span_only(trail)


@pytest.mark.parametrize("framework", ["django"])
def test_content_by_the_sdks_environment_variable(
    framework: str,
    make_app: MakeApp,
    trail: AuditTrail,
    fake_claude: FakeClaude,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE", "content")  # read when the client is built
    app = make_app()
    assert app.post("/chat", "uma", {"prompt": SENTINEL_PROMPT}).status == 200
    content_on_the_sdk_span_only(trail)
