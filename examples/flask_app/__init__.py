"""The Flask example app: ``python -m examples.flask_app`` (http://127.0.0.1:5000/).

Under a WSGI server: ``gunicorn 'examples.flask_app:create_app()'`` or ``gunicorn examples.flask_app:app``.
Configuration comes from the environment (see :mod:`examples.common`): offline against a FakeClaude
by default, the real API when ``ANTHROPIC_API_KEY`` is set, Redis limits with ``CLAUDE_RBAC_STORAGE``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .application import create_app

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["app", "create_app"]

_app: Flask | None = None


def __getattr__(name: str) -> Any:
    # `examples.flask_app:app`, built on first use: importing the package must not start a FakeClaude.
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = create_app()
    return _app
