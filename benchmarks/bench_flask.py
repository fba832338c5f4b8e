"""Flask: a guarded route against the same bare route and against Flask-Limiter (memory storage).

Every case is one Flask app called directly as WSGI (no sockets), with the same signed session cookie,
so the session is decoded in all of them. The guarded route loads the principal from the session, runs
``requires_role("user")`` and writes its ``claude_rbac.authorize`` span; it makes no Claude call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from opentelemetry.sdk.trace import TracerProvider
from werkzeug.test import EnvironBuilder

from benchmarks import harness
from claude_rbac import RBAC, Policy, Principal
from claude_rbac.integrations.flask import ClaudeRBAC, requires_role
from claude_rbac.integrations.wsgi import ADMISSION_KEY

SECRET = "bench-secret"
USERS = {"uma": "user"}
UNREACHABLE = "http://127.0.0.1:9"  # never called: the benchmark makes no Claude call
PLACEHOLDER_KEY = "sk-ant-bench-placeholder-key-0000"


def _app() -> Flask:
    app = Flask(__name__)
    app.secret_key = SECRET
    return app


def _load_principal() -> Principal | None:
    name = session.get("username")
    return Principal(name, USERS[name]) if name in USERS else None


def bare_app() -> Flask:
    app = _app()
    app.add_url_rule("/chat", "chat", lambda: "ok")
    return app


def session_reading_app() -> Flask:
    """The bare route plus what any login costs in Flask: reading the session (which adds ``Vary: Cookie``)."""
    app = _app()
    app.add_url_rule("/chat", "chat", lambda: "ok" if session.get("username") == "uma" else "who?")
    return app


def guarded_app(tracer_provider: TracerProvider | None = None) -> Flask:
    app = _app()
    rbac = RBAC(Policy.default(), api_key=PLACEHOLDER_KEY, base_url=UNREACHABLE, tracer_provider=tracer_provider)
    ClaudeRBAC(app, rbac=rbac, principal_loader=_load_principal)
    app.add_url_rule("/chat", "chat", requires_role("user")(lambda: "ok"))
    return app


def limiter_app() -> tuple[Flask, Limiter]:
    app = _app()
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://")
    app.add_url_rule("/chat", "chat", limiter.limit("1000000/minute")(lambda: "ok"))
    return app, limiter


def _environ(app: Flask, *, signed_in: bool = True) -> dict[str, Any]:
    headers = {}
    if signed_in:
        cookie = app.session_interface.get_signing_serializer(app).dumps({"username": "uma"})  # type: ignore[attr-defined]
        headers["Cookie"] = f"session={cookie}"
    return EnvironBuilder(path="/chat", headers=headers).get_environ()


def _call(app: Flask, environ: dict[str, Any]) -> tuple[str, bytes, dict[str, Any]]:
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: object = None) -> Callable[[bytes], None]:
        status.append(line)
        return lambda data: None

    environ = dict(environ)
    body: Iterable[bytes] = app(environ, start_response)
    try:
        data = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return status[0], data, environ


def _runner(app: Flask) -> Callable[[int], None]:
    environ = _environ(app)

    def run(n: int) -> None:
        for _ in range(n):
            _call(app, environ)

    return run


def _check_ok(app: Flask) -> Callable[[], None]:
    def check() -> None:
        status, body, _ = _call(app, _environ(app))
        assert (status, body) == ("200 OK", b"ok")

    return check


def _check_guarded(app: Flask) -> Callable[[], None]:
    def check() -> None:
        status, body, environ = _call(app, _environ(app))
        assert (status, body) == ("200 OK", b"ok")
        admission = environ[ADMISSION_KEY]  # the guard ran and admitted uma
        assert (admission.principal, admission.guards[-1].role) == (Principal("uma", "user"), "user")
        status, _, _ = _call(app, _environ(app, signed_in=False))
        assert status == "401 UNAUTHORIZED"

    return check


def _check_limited(app: Flask, limiter: Limiter) -> Callable[[], None]:
    def check() -> None:
        counted = sum(limiter.storage.storage.values())  # type: ignore[attr-defined]  # MemoryStorage's counter
        _check_ok(app)()
        assert sum(limiter.storage.storage.values()) == counted + 1  # type: ignore[attr-defined]

    return check


def cases() -> list[harness.Case]:
    bare, reading, guarded, traced = bare_app(), session_reading_app(), guarded_app(), guarded_app(TracerProvider())
    limited, limiter = limiter_app()
    return [
        harness.Case("flask", "flask bare route", _runner(bare), _check_ok(bare)),
        harness.Case("flask", "bare route reading the session (any login)", _runner(reading), _check_ok(reading)),
        harness.Case("flask", "claude_rbac requires_role", _runner(guarded), _check_guarded(guarded)),
        harness.Case("flask", "claude_rbac requires_role, OTel SDK recording", _runner(traced), _check_guarded(traced)),
        harness.Case(
            "flask", "Flask-Limiter 1000000/minute, memory://", _runner(limited), _check_limited(limited, limiter)
        ),
    ]


if __name__ == "__main__":
    print(harness.table(harness.measure(cases())))
