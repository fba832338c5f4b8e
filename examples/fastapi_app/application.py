"""A FastAPI app with claude_rbac in front of Claude: the product's showcase.

Sign in as a demo user (vera=viewer, uma=user, paul=power, ada=admin): users chat with haiku, power
users also get sonnet and opus, web search and the long-answer route (opus only), admins get the admin page,
viewers only read. The session holds the username alone; the role is looked up on the server, never
taken from the request. The page at ``/`` drives the JSON API beside it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from html import escape
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

import anthropic
from anthropic import AsyncAnthropic
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection

from claude_rbac import RBAC, InvalidRequest, NotAuthenticated, Principal
from claude_rbac.integrations.fastapi import EventStreamResponse, RBACMiddleware, get_principal, requires_role
from examples.common import DEMO_USERS, MODELS, SECRET_KEY, build_rbac, own_spend, role_of
from examples.spend_chart import admin_spend_html

DEFAULT_MODEL = "claude-haiku-4-5"
LONG_MODEL = "claude-opus-4-7"
WEB_SEARCH: anthropic.types.WebSearchTool20250305Param = {"type": "web_search_20250305", "name": "web_search"}
"""Billed per search: the policy grants it to power and up (``tools = ["web_search"]``)."""


def _page() -> str:
    """page.html, with the demo users and models filled in (no build step, no template engine)."""
    users = "".join(
        f'<button type="button" data-user="{escape(name)}" aria-pressed="false">{escape(name)}'
        f"<small>{escape(role)}</small></button>"
        for name, role in DEMO_USERS.items()
    )
    models = "".join(f'<option value="{escape(model)}">{escape(model)}</option>' for model in MODELS)
    template = (Path(__file__).parent / "page.html").read_text(encoding="utf-8")
    return template.replace("<!--users-->", users).replace("<!--models-->", models)


PAGE = _page()

# The route guards, declared once. Each is a dependency whose value is the governed AsyncAnthropic.
UserClaude = Annotated[AsyncAnthropic, Depends(requires_role("user"))]
LongClaude = Annotated[AsyncAnthropic, Depends(requires_role("power", models=["claude-opus-*"]))]


def session_principal(connection: HTTPConnection) -> Principal | None:
    """The signed-in user: the username from the signed session, the role from the server's own records."""
    username = connection.session.get("username")
    role = role_of(username)
    return Principal(id=username, role=role) if role is not None else None


class ChatRequest(BaseModel):
    prompt: str = Field(min_length=1, max_length=20_000)
    model: str | None = None
    max_tokens: Any = None
    """Passed to the governed client as sent: it checks it against the role and the route (above the cap, it is
    clamped) and answers a value that is no integer in range with a 400, as the Messages API would."""
    web_search: bool = False
    """Let Claude search the web: the governed client refuses it (403 ``tool_not_allowed``) below power."""


def _tools(web_search: bool) -> list[anthropic.types.ToolUnionParam] | anthropic.Omit:
    return [WEB_SEARCH] if web_search else anthropic.omit


def create_app(rbac: RBAC | None = None) -> FastAPI:
    """The app factory; configuration comes from the environment (see :mod:`examples.common`)."""
    backend = None
    if rbac is None:
        rbac, backend = build_rbac()
    governed = rbac

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await governed.aclose()  # the connection pools belong to this event loop

    app = FastAPI(
        title="claude_rbac FastAPI demo",
        description="Role-based access control in front of Claude. Sign in at / as a demo user.",
        lifespan=lifespan,
    )
    app.state.rbac = rbac
    app.state.claude_backend = backend.description if backend is not None else "as configured"
    app.add_middleware(RBACMiddleware, rbac=rbac, principal_loader=session_principal)
    app.add_middleware(SessionMiddleware, secret_key=SECRET_KEY, same_site="lax")  # added last: runs first
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(anthropic.APIStatusError, _upstream_error)
    app.add_exception_handler(anthropic.APIConnectionError, _upstream_unreachable)
    _add_pages(app, rbac)
    _add_api(app, rbac)
    return app


# -- errors ----------------------------------------------------------------------------------------


def _rbac_error(error: InvalidRequest | NotAuthenticated) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.status_code)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
    return _rbac_error(InvalidRequest(problems or "Invalid request."))


async def _upstream_error(request: Request, exc: Exception) -> Response:
    """Claude itself said no (overloaded, bad request...): pass its error body and status on."""
    assert isinstance(exc, anthropic.APIStatusError)
    body = exc.body if isinstance(exc.body, dict) else {"type": "error", "error": {"message": exc.message}}
    return JSONResponse(body, status_code=exc.status_code)


async def _upstream_unreachable(request: Request, exc: Exception) -> Response:
    body = {"type": "error", "error": {"type": "api_error", "message": "Claude could not be reached."}}
    return JSONResponse(body, status_code=502)


# -- pages -----------------------------------------------------------------------------------------


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


async def _username_from(request: Request) -> object:
    """The form field or JSON ``username`` (no python-multipart needed for a urlencoded form)."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        with contextlib.suppress(ValueError):
            data = json.loads(raw or b"{}")
            return data.get("username") if isinstance(data, dict) else None
        return None
    return parse_qs(raw.decode("utf-8", "replace")).get("username", [None])[0]


def _add_pages(app: FastAPI, rbac: RBAC) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return PAGE

    @app.post("/login", tags=["session"])
    async def login(request: Request) -> Any:
        """Sign in as a demo user: form field or JSON ``username``. Only the username goes into the session."""
        username = await _username_from(request)
        role = role_of(username)
        if role is None:
            raise NotAuthenticated("Unknown user.")
        request.session.clear()
        request.session["username"] = username
        if _wants_html(request):
            return RedirectResponse("/", status_code=303)
        return {"user": username, "role": role}

    @app.post("/logout", tags=["session"])
    async def logout(request: Request) -> Any:
        request.session.clear()
        if _wants_html(request):
            return RedirectResponse("/", status_code=303)
        return {"ok": True}

    @app.get("/admin", response_class=HTMLResponse, dependencies=[Depends(requires_role("admin"))], tags=["pages"])
    def admin(request: Request) -> str:
        """Today's spend and the policy in force, for admins only (a plain def: FastAPI runs it on a worker
        thread, so reading the ledger from Redis never blocks the event loop)."""
        rows = "".join(
            f"<tr><td>{escape(role.name)}</td><td>{'yes' if role.allowed else 'no'}</td>"
            f"<td>{escape(', '.join(role.models)) or '-'}</td><td>{role.max_tokens or '-'}</td>"
            f"<td>{role.rpm or '-'}</td></tr>"
            for role in rbac.policy.roles.values()
        )
        principal = get_principal(request)
        return ADMIN_PAGE.format(
            user=escape(principal.id if principal else ""), rows=rows, spend=admin_spend_html(rbac)
        )


# -- the JSON API ----------------------------------------------------------------------------------


def _message_json(message: anthropic.types.Message) -> dict[str, Any]:
    return {
        "text": "".join(block.text for block in message.content if block.type == "text"),
        "model": message.model,
        "usage": {"input_tokens": message.usage.input_tokens, "output_tokens": message.usage.output_tokens},
    }


def _messages(prompt: str) -> list[anthropic.types.MessageParam]:
    if not prompt.strip():
        raise InvalidRequest("prompt must be a non-empty string.")
    return [{"role": "user", "content": prompt}]


def _add_api(app: FastAPI, rbac: RBAC) -> None:
    @app.get("/api/me", tags=["api"])
    async def me(request: Request) -> dict[str, Any]:
        """Who is signed in, the requests left this minute and the dollars left today."""
        principal = get_principal(request)
        if principal is None:
            raise NotAuthenticated("Sign in first.")
        return {
            "user": principal.id,
            "role": principal.role,
            "rate_limits": await rbac.arate_limits(principal),
            "spend": own_spend(await rbac.aspend(principal)),
        }

    @app.get("/api/models", tags=["api"])
    async def models(request: Request) -> list[dict[str, Any]]:
        """The demo's models, and whether the signed-in role may use each (a check: nothing is counted)."""
        principal = get_principal(request)
        return [{"model": model, "allowed": rbac.check(principal, model=model).allowed} for model in MODELS]

    @app.post("/api/chat", tags=["api"])
    async def chat(body: ChatRequest, claude: UserClaude) -> dict[str, Any]:
        """Ask Claude (users and up). The model and max_tokens are checked against the role."""
        message = await claude.messages.create(
            model=body.model or DEFAULT_MODEL,
            max_tokens=512 if body.max_tokens is None else body.max_tokens,
            messages=_messages(body.prompt),
            tools=_tools(body.web_search),
        )
        return _message_json(message)

    @app.post("/api/long", tags=["api"])
    async def long_answer(body: ChatRequest, claude: LongClaude) -> dict[str, Any]:
        """A long answer (power users and up, opus models only on this route)."""
        message = await claude.messages.create(
            model=body.model or LONG_MODEL,
            max_tokens=4096 if body.max_tokens is None else body.max_tokens,
            messages=_messages(body.prompt),
            tools=_tools(body.web_search),
        )
        return _message_json(message)

    @app.get("/api/chat/stream", tags=["api"], response_class=EventStreamResponse)
    async def chat_stream(
        claude: UserClaude,
        prompt: Annotated[str, Query(max_length=20_000)] = "",
        model: str | None = None,
        max_tokens: int = 512,
        web_search: bool = False,
    ) -> Response:
        """Claude's answer as server-sent events: ``data: {"text": ...}`` per piece, then ``event: done``."""
        # Opened here, before the response starts: a denial (model, rate limit) is still an HTTP error status.
        stream = await claude.messages.create(
            model=model or DEFAULT_MODEL,
            max_tokens=max_tokens,
            messages=_messages(prompt),
            tools=_tools(web_search),
            stream=True,
        )
        return EventStreamResponse(_relay(stream))


async def _relay(stream: anthropic.AsyncStream[anthropic.types.RawMessageStreamEvent]) -> AsyncIterator[str]:
    """Claude's events as SSE. EventStreamResponse closes this generator however the response ends,
    and closing it closes Claude's stream (its span ends, its token reservation settles)."""
    usage: dict[str, int] = {}
    async with stream:
        try:
            async for event in stream:
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


ADMIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>claude_rbac admin</title>
<style>body{{font:15px system-ui,sans-serif;margin:2rem auto;max-width:46rem;padding:0 1rem}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.4rem;text-align:left}}
.num{{text-align:right;font-variant-numeric:tabular-nums}}h2{{font-size:1.1rem}}</style>
</head><body><h1>Admin</h1><p>Signed in as <b>{user}</b>.</p>{spend}<h2>The policy in force</h2>
<table><tr><th>role</th><th>Claude API</th><th>models</th><th>max_tokens</th><th>requests/min</th></tr>{rows}</table>
<p><a href="/">Back to the chat</a></p></body></html>
"""
