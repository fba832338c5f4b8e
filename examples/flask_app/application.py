"""A small Flask app with claude_rbac in front of Claude.

Sign in as a demo user (vera=viewer, uma=user, paul=power, ada=admin): users chat with haiku, power
users get a long-answer route on opus, admins get the admin page, viewers only read. The session holds
the username alone; the role is looked up on the server, never taken from the request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
from flask import (
    Blueprint,
    Flask,
    Response,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from claude_rbac import RBAC, InvalidRequest, NotAuthenticated, Principal
from claude_rbac.integrations.flask import ClaudeRBAC, current_claude, current_principal, current_rbac, requires_role
from examples.common import DEMO_USERS, MODELS, SECRET_KEY, build_rbac, own_spend, role_of
from examples.spend_chart import admin_spend_html
from examples.telemetry import configure_telemetry_from_env, wsgi_server_spans

DEFAULT_MODEL = "claude-haiku-4-5"
LONG_MODEL = "claude-opus-4-7"

pages = Blueprint("pages", __name__)
api = Blueprint("api", __name__, url_prefix="/api")


def session_principal() -> Principal | None:
    """The signed-in user: the username from the signed session, the role from the server's own records."""
    username = session.get("username")
    role = role_of(username)
    return Principal(id=username, role=role) if role is not None else None


def create_app(rbac: RBAC | None = None) -> Flask:
    """The app factory (``gunicorn 'examples.flask_app:create_app()'``); configuration comes from the environment."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = SECRET_KEY
    if rbac is None:
        rbac, backend = build_rbac()
        app.config["CLAUDE_BACKEND"] = backend.description
        if configure_telemetry_from_env().traces:  # spans exported: give each request its SERVER span
            app.wsgi_app = wsgi_server_spans(app.wsgi_app)  # type: ignore[method-assign]
    ClaudeRBAC(app, rbac=rbac, principal_loader=session_principal)
    app.register_error_handler(anthropic.APIStatusError, _upstream_error)
    app.register_error_handler(anthropic.APIConnectionError, _unreachable)
    app.register_blueprint(pages)
    app.register_blueprint(api)
    return app


def _wants_html() -> bool:
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def _upstream_error(error: anthropic.APIStatusError) -> ResponseReturnValue:
    """Claude itself said no (overloaded, bad request...): pass its error body and status on."""
    body = error.body if isinstance(error.body, dict) else {"type": "error", "error": {"message": error.message}}
    return body, error.status_code


def _unreachable(error: anthropic.APIConnectionError) -> ResponseReturnValue:
    return {"type": "error", "error": {"type": "api_error", "message": "Could not reach Claude."}}, 502


# -- pages -----------------------------------------------------------------------------------------


@pages.get("/")
def index() -> str:
    principal = current_principal()
    spend = own_spend(current_rbac().spend(principal)) if principal is not None else []
    return render_template("index.html", principal=principal, users=DEMO_USERS, models=MODELS, spend=spend)


@pages.post("/login")
def login() -> ResponseReturnValue:
    data = request.get_json(silent=True) or request.form
    username = data.get("username")
    role = role_of(username)
    if role is None:
        raise NotAuthenticated("Unknown user.")
    session.clear()
    session["username"] = username
    if _wants_html():
        return redirect(url_for("pages.index"), 303)
    return {"user": username, "role": role}


@pages.post("/logout")
def logout() -> ResponseReturnValue:
    session.clear()
    if _wants_html():
        return redirect(url_for("pages.index"), 303)
    return {"ok": True}


@pages.get("/admin")
@requires_role("admin")
def admin() -> str:
    rbac = current_rbac()
    spend = Markup(admin_spend_html(rbac))  # built from escaped parts (examples/spend_chart.py)
    return render_template("admin.html", principal=current_principal(), roles=rbac.policy.roles.values(), spend=spend)


# -- the JSON API ----------------------------------------------------------------------------------


@api.get("/me")
def me() -> ResponseReturnValue:
    principal = current_principal()
    if principal is None:
        raise NotAuthenticated("Sign in first.")
    rbac = current_rbac()
    return {
        "user": principal.id,
        "role": principal.role,
        "rate_limits": rbac.rate_limits(principal),
        "spend": own_spend(rbac.spend(principal)),
    }


def _chat_request(default_model: str, default_max_tokens: int) -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidRequest('Send a JSON object: {"prompt": ...}.')
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("prompt must be a non-empty string.")
    # The model and max_tokens go to the governed client as sent: it checks them against the role and this
    # route, and answers a value that is no integer in range (a string, a float, 0...) with a 400.
    return {
        "model": body.get("model") or default_model,
        "max_tokens": body.get("max_tokens", default_max_tokens),
        "messages": [{"role": "user", "content": prompt}],
    }


def _message_json(message: anthropic.types.Message) -> dict[str, Any]:
    return {
        "text": "".join(block.text for block in message.content if block.type == "text"),
        "model": message.model,
        "usage": {"input_tokens": message.usage.input_tokens, "output_tokens": message.usage.output_tokens},
    }


@api.post("/chat")
@requires_role("user")
def chat() -> ResponseReturnValue:
    return _message_json(current_claude().messages.create(**_chat_request(DEFAULT_MODEL, 512)))


@api.post("/long")
@requires_role("power", models=["claude-opus-*"])
def long_answer() -> ResponseReturnValue:
    return _message_json(current_claude().messages.create(**_chat_request(LONG_MODEL, 4096)))


@api.get("/chat/stream")
@requires_role("user")
def chat_stream() -> Response:
    prompt = request.args.get("prompt", "").strip()
    if not prompt:
        raise InvalidRequest("prompt must be a non-empty string.")
    # Opened here, not in the generator: a denial (model, rate limit) is still an HTTP error status.
    stream = current_claude().messages.create(
        model=request.args.get("model") or DEFAULT_MODEL,
        max_tokens=512,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
    )
    return Response(
        stream_with_context(_relay(stream)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _relay(stream: anthropic.Stream[anthropic.types.RawMessageStreamEvent]) -> Iterator[str]:
    """Claude's events as SSE. A browser that leaves closes this generator, which closes Claude's stream."""
    usage: dict[str, int] = {}
    with stream:
        try:
            for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    yield f"data: {json.dumps({'text': event.delta.text})}\n\n"
                elif event.type == "message_start":
                    usage["input_tokens"] = event.message.usage.input_tokens
                elif event.type == "message_delta":
                    usage["output_tokens"] = event.usage.output_tokens
        except anthropic.APIError as error:
            yield f"event: error\ndata: {json.dumps({'type': 'error', 'error': {'message': error.message}})}\n\n"
            return
    yield f"event: done\ndata: {json.dumps({'usage': usage})}\n\n"
