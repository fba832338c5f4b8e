"""A Flask app with every kind of guarded view, talking to a real FakeClaude, and a real werkzeug server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Blueprint, Flask, Response, request, session, stream_with_context
from flask.views import MethodView, View
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from werkzeug.serving import WSGIRequestHandler, make_server

from claude_rbac import RBAC, Policy, Principal
from claude_rbac.integrations.flask import ClaudeRBAC, current_claude, current_principal, current_rbac, requires_role
from claude_rbac.testing import FakeClaude

PLACEHOLDER_KEY = "sk-ant-api03-flask-tests-placeholder-0000"
SECRET = "flask-tests-secret"
HAIKU, SONNET, OPUS = "claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-7"
USERS = {"vera": "viewer", "uma": "user", "paul": "power", "ada": "admin"}
RANK = {"viewer": 0, "user": 1, "power": 2, "admin": 3}


def session_principal() -> Principal | None:
    """The app's own identity: the session holds the username, the role is looked up server-side."""
    name = session.get("username")
    return Principal(name, USERS[name]) if name in USERS else None


def chat_reply() -> dict[str, Any]:
    body = request.get_json(silent=True) or {}
    message = current_claude().messages.create(
        model=body.get("model", HAIKU),
        max_tokens=body.get("max_tokens", 64),
        messages=[{"role": "user", "content": body.get("prompt", "hello")}],
    )
    principal = current_principal()
    assert principal is not None
    return {"text": message.content[0].text, "model": message.model, "user": principal.id}


def sse_relay() -> Iterator[str]:
    """Relays Claude's stream as SSE; asks for the client inside the generator (stream_with_context)."""
    stream = current_claude().messages.create(
        model=request.args.get("model", HAIKU),
        max_tokens=int(request.args.get("max_tokens", "64")),
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
    )
    with stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                yield f"data: {json.dumps({'text': event.delta.text})}\n\n"
    yield "event: done\ndata: {}\n\n"


@requires_role("power")
class Reports(MethodView):
    def get(self) -> dict[str, str]:
        return {"view": "reports"}

    def post(self) -> dict[str, Any]:
        return chat_reply()


class Notes(MethodView):
    def get(self) -> dict[str, str]:
        return {"view": "notes"}

    @requires_role("admin")
    def post(self) -> dict[str, Any]:
        return chat_reply()


class Digest(View):
    methods = ["POST"]  # noqa: RUF012 (Flask's own class attribute)
    decorators = [requires_role("user")]  # noqa: RUF012

    def dispatch_request(self) -> dict[str, Any]:
        return chat_reply()


def add_routes(app: Flask) -> None:
    @app.post("/login")
    def login() -> dict[str, bool]:
        session["username"] = request.get_json()["username"]
        return {"ok": True}

    @app.get("/whoami")
    def whoami() -> dict[str, str | None]:
        principal = current_principal()
        return {"user": principal.id if principal else None, "role": principal.role if principal else None}

    @app.post("/chat")
    @requires_role("user")
    def chat() -> dict[str, Any]:
        return chat_reply()

    @app.post("/async-chat")
    @requires_role("user")
    async def async_chat() -> dict[str, Any]:
        return chat_reply()

    @app.post("/opus")
    @requires_role("power", models=["claude-opus-*"], max_tokens=100)
    def opus() -> dict[str, Any]:
        return chat_reply()

    @app.post("/once")
    @requires_role("user", rpm=1)
    def once() -> dict[str, Any]:
        return chat_reply()

    @app.get("/page")
    @requires_role("viewer")
    def page() -> str:
        return "a page for every signed-in role"

    @app.get("/unguarded-claude")
    def unguarded_claude() -> str:
        current_claude()
        return "unreachable"

    @app.get("/stream")
    @requires_role("user")
    def stream() -> Response:
        return Response(stream_with_context(sse_relay()), mimetype="text/event-stream")

    app.add_url_rule("/reports", view_func=Reports.as_view("reports"))
    app.add_url_rule("/notes", view_func=Notes.as_view("notes"))
    app.add_url_rule("/digest", view_func=Digest.as_view("digest"))

    team = Blueprint("team", __name__, url_prefix="/team")

    @team.post("/chat")
    @requires_role("power")
    def team_chat() -> dict[str, Any]:
        return chat_reply()

    app.register_blueprint(team)


GUARDED_ENDPOINTS = [
    pytest.param("/chat", "user", id="sync-view"),
    pytest.param("/async-chat", "user", id="async-view"),
    pytest.param("/reports", "power", id="methodview-class"),
    pytest.param("/notes", "admin", id="methodview-method"),
    pytest.param("/digest", "user", id="view-decorators"),
    pytest.param("/team/chat", "power", id="blueprint"),
]


_OPEN: list[RBAC] = []


def close_later(target: RBAC | Flask) -> None:
    """Close this RBAC (or the app's) after the test: its connection pools must not wait for the GC."""
    if isinstance(target, Flask):
        with target.app_context():
            target = current_rbac()
    if not any(rbac is target for rbac in _OPEN):
        _OPEN.append(target)


@pytest.fixture(autouse=True)
def _close_rbacs() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def make_rbac(fake: FakeClaude, **kwargs: Any) -> RBAC:
    rbac = RBAC(kwargs.pop("policy", Policy.default()), api_key=PLACEHOLDER_KEY, base_url=fake.url, **kwargs)
    close_later(rbac)
    return rbac


def build_app(rbac: RBAC | None, *, testing: bool = True, **extension: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, TESTING=testing)
    extension.setdefault("principal_loader", session_principal)
    ClaudeRBAC(app, rbac=rbac, **extension)
    add_routes(app)
    close_later(app)
    return app


@pytest.fixture
def rbac(fake_claude: FakeClaude) -> RBAC:
    return make_rbac(fake_claude)


@pytest.fixture
def app(rbac: RBAC) -> Flask:
    return build_app(rbac)


@pytest.fixture
def login(app: Flask) -> Callable[[str | None], Any]:
    """A test client signed in as the given demo user (or nobody)."""

    def signed_in(username: str | None) -> Any:
        client = app.test_client()
        if username is not None:
            assert client.post("/login", json={"username": username}).status_code == 200
        return client

    return signed_in


def spans_named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def authorize_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return spans_named(exporter, "claude_rbac.authorize")


def route_decisions(exporter: InMemorySpanExporter) -> list[tuple[str | None, str, str]]:
    """(user, decision, reason) of the route-guard spans (the ones that name a required role)."""
    return [
        (
            span.attributes.get("enduser.id"),
            span.attributes["claude_rbac.decision"],
            span.attributes["claude_rbac.decision.reason"],
        )
        for span in authorize_spans(exporter)
        if span.attributes and "claude_rbac.required_role" in span.attributes
    ]


class ServerSpan:
    """Stands in for a WSGI server instrumentation: each request runs inside a SERVER span."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.tracer = trace.get_tracer("tests.flask.server")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self.tracer.start_as_current_span(
            f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}", kind=trace.SpanKind.SERVER
        ):
            return self.app(environ, start_response)


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` with werkzeug's threaded server on 127.0.0.1 (a free port); stop it afterwards."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
