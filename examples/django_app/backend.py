"""Where the example's Claude calls go: the real API with ANTHROPIC_API_KEY, else a FakeClaude started here."""

from __future__ import annotations

from examples.backend import backend_from_env
from examples.common import configure_tracing_from_env

configure_tracing_from_env()
BACKEND = backend_from_env()


def api_key() -> str:
    """``CLAUDE_RBAC["API_KEY"]`` names this function: a key source of the app's own (here, the demo's)."""
    return BACKEND.api_key
