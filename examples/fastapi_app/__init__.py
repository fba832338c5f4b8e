"""The FastAPI example app, the product's showcase: ``python -m examples.fastapi_app`` (http://127.0.0.1:8000/).

Under uvicorn: ``uvicorn examples.fastapi_app:app --workers 4`` (each worker builds its own app from the
environment; share the limits with ``CLAUDE_RBAC_STORAGE=redis://...``). Configuration comes from the
environment (see :mod:`examples.common`): offline against a FakeClaude by default, the real API when
``ANTHROPIC_API_KEY`` is set, the audit trail on the console with ``OTEL_TRACES_EXPORTER=console`` (or OTLP:
see :mod:`examples.telemetry`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .application import create_app

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["app", "create_app"]

_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    # `examples.fastapi_app:app`, built on first use: importing the package must not start a FakeClaude.
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = create_app()
    return _app
