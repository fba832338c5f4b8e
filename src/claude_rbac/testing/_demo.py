"""``claude-rbac demo``: every default role makes a few calls against a local FakeClaude.

It prints what happened to each call (allowed, clamped, denied and why, rate-limited) and the
audit attributes of its decision span, read back from an in-memory exporter when the OTel SDK is
installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import RBACError
from ..policy import Policy, Principal
from ..rbac import RBAC
from .fake_claude import FakeClaude

__all__ = ["run_demo"]

SHOWN = (
    "claude_rbac.decision",
    "claude_rbac.decision.reason",
    "enduser.id",
    "claude_rbac.role",
    "gen_ai.request.model",
    "claude_rbac.max_tokens.requested",
    "claude_rbac.max_tokens.effective",
    "claude_rbac.api_key.id",
)


@dataclass
class Row:
    who: str
    call: str
    outcome: str
    reason: str
    sent: str
    attributes: dict[str, Any]


def _exporter() -> tuple[Any, Any]:
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:  # pragma: no cover - the dev extra installs the SDK
        return None, None
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def run_demo(rpm_burst: int = 11) -> int:
    provider, exporter = _exporter()
    with FakeClaude() as fake:
        rbac = RBAC(
            Policy.default(),
            api_key="sk-ant-demo-key-not-a-real-one-0000000000-DEMO",
            base_url=fake.url,
            tracer_provider=provider,
        )
        rows: list[Row] = []
        messages = [{"role": "user", "content": "Say hello."}]

        def attempt(who: Principal | None, call: str, run: Callable[[Any], Any]) -> None:
            before = fake.count()
            if exporter is not None:
                exporter.clear()
            try:
                run(rbac.client(who))
                outcome, reason = "allowed", "-"
            except RBACError as exc:
                outcome, reason = f"{exc.status_code} {type(exc).__name__}", exc.reason
            sent = fake.requests[-1].json if fake.count() > before else None
            attributes: dict[str, Any] = {}
            if exporter is not None:
                spans = [s for s in exporter.get_finished_spans() if s.name == "claude_rbac.authorize"]
                if spans:
                    attributes = {k: v for k, v in dict(spans[-1].attributes or {}).items() if k in SHOWN}
                    if attributes.get("claude_rbac.decision.reason") == "clamped":
                        outcome = "clamped"
                        reason = "max_tokens over the cap"
            shown_sent = f"max_tokens={sent.get('max_tokens')}" if isinstance(sent, dict) else "nothing"
            label = "anonymous" if who is None else f"{who.id} ({who.role})"
            rows.append(Row(label, call, outcome, reason, shown_sent, attributes))

        def create(model: str, max_tokens: int) -> Callable[[Any], Any]:
            return lambda c: c.messages.create(model=model, max_tokens=max_tokens, messages=messages)

        vera, uma, paul, ada = (
            Principal(name, role)
            for name, role in (("vera", "viewer"), ("uma", "user"), ("paul", "power"), ("ada", "admin"))
        )
        attempt(None, "haiku, 100 tokens", create("claude-haiku-4-5", 100))
        attempt(vera, "haiku, 100 tokens", create("claude-haiku-4-5", 100))
        attempt(uma, "haiku, 100 tokens", create("claude-haiku-4-5", 100))
        attempt(uma, "haiku, 2000 tokens", create("claude-haiku-4-5", 2000))
        attempt(uma, "sonnet, 100 tokens", create("claude-sonnet-4-6", 100))
        attempt(uma, "Claude-Haiku-4-5 (case)", create("Claude-Haiku-4-5", 100))
        attempt(paul, "opus, 4000 tokens", create("claude-opus-4-7", 4000))
        attempt(paul, "opus, 9000 tokens", create("claude-opus-4-7", 9000))
        attempt(ada, "opus, 8192 tokens", create("claude-opus-4-7", 8192))
        attempt(ada, "models.list()", lambda c: c.models.list())
        for n in range(rpm_burst - 2):
            attempt(uma, f"haiku burst #{n + 3}", create("claude-haiku-4-5", 10))
        rbac.close()
    _report(rows, len(fake.requests), show_attributes=exporter is not None)
    return 0


def _report(rows: list[Row], received: int, *, show_attributes: bool) -> None:
    print("claude_rbac demo: the default policy (viewer < user < power < admin) against a local FakeClaude\n")
    header = ["who", "call", "outcome", "reason", "sent to Claude"]
    shown = [r for r in rows if not r.call.startswith("haiku burst") or r.outcome != "allowed"]
    burst_ok = sum(1 for r in rows if r.call.startswith("haiku burst") and r.outcome == "allowed")
    print(_table([header, *[[r.who, r.call, r.outcome, r.reason, r.sent] for r in shown]]))
    print(f"\n(uma's burst: {burst_ok} more calls allowed before the user role's 10/minute limit; then 429s.)")
    if show_attributes:
        print("\nAudit attributes of each decision span (claude_rbac.authorize):")
        for row in shown:
            pairs = ", ".join(f"{k.removeprefix('claude_rbac.')}={v}" for k, v in row.attributes.items())
            print(f"- {row.who}, {row.call}: {pairs}")
    print(f"\nFakeClaude received {received} request(s); every denial was decided before sending.")
