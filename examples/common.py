"""What the example apps share: demo users, configuration from the environment, and tracing.

Environment:

* ``CLAUDE_RBAC_POLICY``: the policy file (default: ``examples/rbac.toml``).
* ``CLAUDE_RBAC_STORAGE``: the limits storage URI (default ``memory://``; e.g. ``redis://127.0.0.1:6379/0``).
* ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``: see :func:`claude_rbac.testing.backend.backend_from_env`;
  with neither, the app talks to a FakeClaude it starts itself.
* ``CLAUDE_RBAC_DEMO_TRACES=console`` or ``OTEL_TRACES_EXPORTER=console``: print spans to stdout;
  ``OTEL_EXPORTER_OTLP_ENDPOINT``: send them over OTLP (needs ``opentelemetry-exporter-otlp``).
"""

from __future__ import annotations

import os
from pathlib import Path

from claude_rbac import RBAC, Policy
from claude_rbac.testing.backend import Backend, backend_from_env

HERE = Path(__file__).resolve().parent
DEFAULT_POLICY = HERE / "rbac.toml"
SECRET_KEY = os.environ.get("CLAUDE_RBAC_DEMO_SECRET", "demo-only-secret-change-me")

DEMO_USERS: dict[str, str] = {
    "vera": "viewer",
    "uma": "user",
    "paul": "power",
    "ada": "admin",
}
"""username -> role. The role lives here, on the server: the session only holds the username."""

MODELS = ("claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-7")


def role_of(username: object) -> str | None:
    return DEMO_USERS.get(username) if isinstance(username, str) else None


def build_rbac() -> tuple[RBAC, Backend]:
    configure_tracing_from_env()
    backend = backend_from_env()
    policy = Policy.from_file(os.environ.get("CLAUDE_RBAC_POLICY") or DEFAULT_POLICY)
    storage = os.environ.get("CLAUDE_RBAC_STORAGE") or "memory://"
    prefix = os.environ.get("CLAUDE_RBAC_KEY_PREFIX") or "claude_rbac"
    rbac = RBAC(policy, storage=storage, key_prefix=prefix, api_key=backend.api_key, base_url=backend.base_url)
    return rbac, backend


_configured = False


def configure_tracing_from_env() -> None:
    """Install an OTel SDK tracer provider when the environment asks for one (once per process)."""
    global _configured
    wants_console = "console" in (
        os.environ.get("CLAUDE_RBAC_DEMO_TRACES", ""),
        os.environ.get("OTEL_TRACES_EXPORTER", ""),
    )
    wants_otlp = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    if _configured or not (wants_console or wants_otlp):
        return
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "claude-rbac-example")})
    )
    if wants_console:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    if wants_otlp:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # optional

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True
