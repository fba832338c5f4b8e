"""WSGI apps the security tests run under gunicorn: ``gunicorn 'tests.security._served_wsgi:unicode_paths()'``.

The signed-in user comes from a bearer token looked up in a server-side table (never a role the client
sends); the Claude endpoint is ``ANTHROPIC_BASE_URL`` (a FakeClaude of the test).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask, request

from claude_rbac import RBAC, Policy, Principal
from claude_rbac.integrations import wsgi

TOKENS = {"t-uma": Principal("uma", "user"), "t-ada": Principal("ada", "admin")}
UNICODE_RULES = {"/über/*": "admin", "/日本/*": "admin", "/café": "admin"}


def token_principal(environ: Mapping[str, Any]) -> Principal | None:
    scheme, _, token = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
    return TOKENS.get(token) if scheme.lower() == "bearer" else None


def served_rbac() -> RBAC:
    return RBAC(Policy.default(), api_key="sk-ant-api03-served-wsgi-0000", base_url=os.environ["ANTHROPIC_BASE_URL"])


def flask_routes() -> Flask:
    """A Flask app routing non-ASCII paths, as Flask does: on the UTF-8 decoded path."""
    app = Flask(__name__)

    @app.get("/über/<name>")
    def uber(name: str) -> dict[str, str]:
        return {"area": "über", "name": name}

    @app.get("/日本/<name>")
    def nihon(name: str) -> dict[str, str]:
        return {"area": "日本", "name": name}

    @app.get("/café")
    def cafe() -> dict[str, str]:
        return {"area": "café"}

    @app.get("/api/me")
    def me() -> dict[str, str | None]:
        principal = wsgi.get_principal(request.environ)
        return {"user": principal.id if principal else None}

    return app


def unicode_paths(rbac: RBAC | None = None) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """Flask behind the plain WSGI middleware, whose rules name non-ASCII paths."""
    app = flask_routes()
    app.wsgi_app = wsgi.RBACMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, rbac=rbac or served_rbac(), principal_loader=token_principal, rules=UNICODE_RULES
    )
    return app
