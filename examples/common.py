"""What the example apps share: demo users, configuration from the environment, and tracing.

Environment:

* ``CLAUDE_RBAC_POLICY``: the policy file (default: ``examples/rbac.toml``).
* ``CLAUDE_RBAC_STORAGE``: the limits storage URI (default ``memory://``; e.g. ``redis://127.0.0.1:6379/0``).
* ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``: see :func:`examples.backend.backend_from_env`;
  with neither, the app talks to a FakeClaude it starts itself.
* ``CLAUDE_RBAC_DEMO_EXTRA_USERS``: more demo users, ``name=role,name=role`` (load tests sign in many users).
* ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` / ``OTEL_LOGS_EXPORTER`` (``console``, ``otlp``),
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` and the other standard ``OTEL_*`` variables: the audit trail's spans,
  metrics and log events, see :mod:`examples.telemetry` (``CLAUDE_RBAC_DEMO_TRACES=console`` still works).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from claude_rbac import RBAC, Policy, SpendWindow
from examples.backend import Backend, backend_from_env
from examples.telemetry import configure_telemetry_from_env, log_events_wanted

HERE = Path(__file__).resolve().parent
DEFAULT_POLICY = HERE / "rbac.toml"
SECRET_KEY = os.environ.get("CLAUDE_RBAC_DEMO_SECRET", "demo-only-secret-change-me")


def extra_demo_users(spec: str) -> dict[str, str]:
    """``"name=role,name=role"`` as a dict; a malformed entry is a ValueError (at import: the app won't start)."""
    users: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        name, _, role = (piece.strip() for piece in entry.partition("="))
        if not name or not role:
            raise ValueError(f"CLAUDE_RBAC_DEMO_EXTRA_USERS: expected name=role, got {entry!r}")
        users[name] = role
    return users


DEMO_USERS: dict[str, str] = {
    "vera": "viewer",
    "uma": "user",
    "paul": "power",
    "ada": "admin",
    **extra_demo_users(os.environ.get("CLAUDE_RBAC_DEMO_EXTRA_USERS", "")),
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
    rbac = RBAC(
        policy,
        storage=storage,
        key_prefix=prefix,
        api_key=backend.api_key,
        base_url=backend.base_url,
        audit_events=log_events_wanted(),  # a claude_rbac.access.denied log event per denial, when logs go somewhere
    )
    return rbac, backend


def configure_tracing_from_env() -> None:
    """Spans, metrics and log events as the standard ``OTEL_*`` variables ask (once per process)."""
    configure_telemetry_from_env()


def own_spend(windows: Iterable[SpendWindow]) -> list[dict[str, str]]:
    """The principal's own spend windows (``rbac.spend(principal)``) as JSON for the demo page.

    A pool's or a workspace's ``used`` is what everyone sharing it spent: the page shows it to admins only
    (on the admin page), so a user sees their own limits and the route's. Dollars are exact decimal strings.
    """
    return [
        {
            "scope": window.scope,
            "period": window.period,
            "limit": str(window.limit),
            "used": str(window.used),
            "remaining": str(window.remaining),
            "resets_at": window.resets_at.isoformat(),
        }
        for window in windows
        if window.scope in ("principal", "route")
    ]
