"""The audit trail as a collector sees it: every span, metric point, log record and log event a test exported.

:class:`AuditTrail` reads them back; :func:`render` draws each trace as an indented tree, so a test can
state the exact shape it expects in a few lines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from claude_rbac.testing import InMemoryMetrics

SENTINEL_KEY = "sk-ant-api03-AUDITSENTINELKEY-0123456789abcdefghijklmnopqrstuvwxyz-tail"
"""The API key every audited app uses. Its fingerprint shows the last 4 characters, never the rest."""
KEY_SECRET_PART = "AUDITSENTINELKEY-0123456789"
SENTINEL_PROMPT = "SENTINEL-PROMPT-7f3a: the merger closes on Friday"

AUTHORIZE = "claude_rbac.authorize"
SDK_CALL = "anthropic.messages.create"
DENIED_EVENT = "claude_rbac.access.denied"


@dataclass
class AuditTrail:
    """The exporters of one test: spans (the global in-memory exporter), metrics, Python logs and OTel log events."""

    spans_exporter: InMemorySpanExporter
    metrics: InMemoryMetrics
    log_exporter: InMemoryLogRecordExporter
    logger_provider: LoggerProvider
    log_capture: Any
    """pytest's ``caplog``: its record list is replaced between test phases, so it is read when asked."""

    @classmethod
    def start(cls, spans: InMemorySpanExporter, metrics: InMemoryMetrics, log_capture: Any) -> AuditTrail:
        log_exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
        provider = LoggerProvider()
        provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
        return cls(spans, metrics, log_exporter, provider, log_capture)

    def rbac_options(self) -> dict[str, Any]:
        """The RBAC keyword arguments that send the trail here (plus the sentinel key)."""
        return {
            "api_key": SENTINEL_KEY,
            "meter_provider": self.metrics.provider,
            "logger_provider": self.logger_provider,
        }

    # -- reading back ------------------------------------------------------------------------------

    @property
    def spans(self) -> list[ReadableSpan]:
        return list(self.spans_exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans if span.name == name]

    def server_spans(self) -> list[ReadableSpan]:
        return [span for span in self.spans if span.kind is SpanKind.SERVER]

    def guard_spans(self) -> list[ReadableSpan]:
        """Route-guard decisions: the ``claude_rbac.authorize`` spans that name a required role."""
        return [span for span in self.named(AUTHORIZE) if "claude_rbac.required_role" in attributes(span)]

    def call_decision_spans(self) -> list[ReadableSpan]:
        """The governed client's decisions (no required role; they name the operation)."""
        return [span for span in self.named(AUTHORIZE) if "claude_rbac.required_role" not in attributes(span)]

    def points(self, name: str) -> list[tuple[dict[str, Any], int | float]]:
        return self.metrics.points(name)

    def decision_counts(self) -> dict[tuple[str, str, str, str], int | float]:
        """``claude_rbac.decisions`` as {(decision, reason, role, model): count}."""
        return {
            (
                point["claude_rbac.decision"],
                point["claude_rbac.decision.reason"],
                point["claude_rbac.role"],
                point["gen_ai.request.model"],
            ): value
            for point, value in self.points("claude_rbac.decisions")
        }

    @property
    def records(self) -> list[logging.LogRecord]:
        return list(self.log_capture.records)

    def denial_records(self) -> list[dict[str, Any]]:
        """The structured fields of the ``claude_rbac`` logger's denial records."""
        return [record.claude_rbac for record in self.records if hasattr(record, "claude_rbac")]

    def events(self) -> list[ReadableLogRecord]:
        return list(self.log_exporter.get_finished_logs())

    # -- privacy -----------------------------------------------------------------------------------

    def exported_text(self) -> str:
        """Everything a collector would receive, as text: spans, metric points, log lines and log events."""
        spans = [span.to_json() for span in self.spans]
        data = self.metrics.reader.get_metrics_data()
        metrics = data.to_json() if data is not None else ""
        logs = [
            record.getMessage() + json.dumps(getattr(record, "claude_rbac", None), default=str)
            for record in self.records
        ]
        events = [event.to_json() for event in self.events()]
        return "\n".join([*spans, metrics, *logs, *events])

    def assert_no_secrets(self) -> None:
        exported = self.exported_text()
        assert exported, "nothing was exported"
        for secret in (SENTINEL_KEY, KEY_SECRET_PART, SENTINEL_PROMPT, "SENTINEL-PROMPT"):
            assert secret not in exported, f"{secret!r} was exported"


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def decision_of(span: ReadableSpan) -> tuple[str, str] | None:
    found = attributes(span)
    if "claude_rbac.decision" not in found:
        return None
    return found["claude_rbac.decision"], found["claude_rbac.decision.reason"]


# -- trees -------------------------------------------------------------------------------------------


def render(spans: Sequence[ReadableSpan], *, collapse: Iterable[str] = ()) -> list[str]:
    """Each trace as indented lines ``KIND name -> decision/reason``, roots first, siblings in start order.

    Spans named in ``collapse`` (a framework's own INTERNAL spans, e.g. FastAPI's ``fastapi.endpoint``) are
    left out and their children hang on the nearest span that is kept.
    """
    hidden = set(collapse)
    by_id = {span.context.span_id: span for span in spans}

    def kept_parent(span: ReadableSpan) -> int | None:
        parent = span.parent.span_id if span.parent is not None else None
        while parent is not None and parent in by_id and by_id[parent].name in hidden:
            grand = by_id[parent].parent
            parent = grand.span_id if grand is not None else None
        return parent if parent in by_id else None

    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        if span.name not in hidden:
            children.setdefault(kept_parent(span), []).append(span)
    lines: list[str] = []

    def draw(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            decision = decision_of(span)
            suffix = f" -> {decision[0]}/{decision[1]}" if decision else ""
            lines.append(f"{'  ' * depth}{span.kind.name} {span.name}{suffix}")
            draw(span.context.span_id, depth + 1)

    draw(None, 0)
    return lines


def parent_of(span: ReadableSpan, spans: Iterable[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return next((other for other in spans if other.context.span_id == span.parent.span_id), None)


def assert_direct_links(trail: AuditTrail) -> None:
    """A route guard's decision span is a child of the SERVER span; a call's is a child of the SDK call span."""
    spans = trail.spans
    for span in trail.guard_spans():
        parent = parent_of(span, spans)
        assert parent is not None and parent.kind is SpanKind.SERVER, f"guard span's parent: {parent}"
        assert span.context.trace_id == parent.context.trace_id
    for span in trail.call_decision_spans():
        parent = parent_of(span, spans)
        assert parent is not None and parent.name == SDK_CALL, f"call decision span's parent: {parent}"


def subset(expected: Mapping[str, Any], span: ReadableSpan) -> None:
    """Assert the span carries at least ``expected`` (with a readable diff when it does not)."""
    found = attributes(span)
    missing = {
        name: (value, found.get(name, "<absent>")) for name, value in expected.items() if found.get(name) != value
    }
    assert not missing, f"{span.name}: expected vs found {missing}"


def same_trace(spans: Iterable[ReadableSpan], member: ReadableSpan) -> list[ReadableSpan]:
    """The spans of ``member``'s trace."""
    return [span for span in spans if span.context.trace_id == member.context.trace_id]
