"""Several guards on one request intersect their scopes: a later guard narrows, it never replaces.

A router (FastAPI), an outer decorator (Starlette) or a View class (Flask) narrows a route to haiku and
256 tokens (and client tools); the endpoint's own ``requires_role("user")`` adds no narrowing of its own. A power user
asking that endpoint for opus must be refused, and a long haiku answer must be clamped to 256: the
endpoint's guard must not hand out a client that forgot the outer narrowing. The outer guard also narrows
the tools to client tools: power's web search (issue #15) is refused there.
"""

# ruff: noqa: B008

from typing import Any

import pytest
from anthropic import AsyncAnthropic
from fastapi import APIRouter, Depends, FastAPI
from flask import Blueprint, Flask, request
from flask.views import MethodView
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from claude_rbac import RBAC, Principal
from claude_rbac.integrations import fastapi as fastapi_rbac
from claude_rbac.integrations import flask as flask_rbac
from claude_rbac.integrations import starlette as starlette_rbac
from claude_rbac.testing import FakeClaude

from ._support import HAIKU, OPUS, make_rbac

NARROW: dict[str, Any] = {"models": "claude-haiku-*", "max_tokens": 256, "tools": ["custom"]}
SEARCH = {"type": "web_search_20250305", "name": "web_search"}


def extra(body: dict[str, Any]) -> dict[str, Any]:
    """The tools a request's JSON asks for, passed on to Claude as they are."""
    return {"tools": body["tools"]} if "tools" in body else {}


POWER = Principal("paul", "power")


def power_user(connection: HTTPConnection) -> Principal:
    return POWER


def fastapi_app(rbac: RBAC) -> FastAPI:
    app = FastAPI()
    app.add_middleware(fastapi_rbac.RBACMiddleware, rbac=rbac, principal_loader=power_user)
    router = APIRouter(prefix="/team", dependencies=[Depends(fastapi_rbac.requires_role("user", **NARROW))])

    @router.post("/chat")
    async def chat(body: dict[str, Any], claude: AsyncAnthropic = Depends(fastapi_rbac.requires_role("user"))) -> Any:
        message = await claude.messages.create(
            model=body["model"],
            max_tokens=body["max_tokens"],
            messages=[{"role": "user", "content": "hi"}],
            **extra(body),
        )
        return {"model": message.model}

    app.include_router(router)
    return app


@starlette_rbac.requires_role("user", **NARROW)
@starlette_rbac.requires_role("user")
async def starlette_chat(request: Request) -> Response:
    body = await request.json()
    message = await starlette_rbac.get_claude(request).messages.create(
        model=body["model"], max_tokens=body["max_tokens"], messages=[{"role": "user", "content": "hi"}], **extra(body)
    )
    return JSONResponse({"model": message.model})


def starlette_app(rbac: RBAC) -> Starlette:
    return Starlette(
        routes=[Route("/team/chat", starlette_chat, methods=["POST"])],
        middleware=[Middleware(starlette_rbac.RBACMiddleware, rbac=rbac, principal_loader=power_user)],
    )


@flask_rbac.requires_role("user", **NARROW)
class TeamChat(MethodView):
    @flask_rbac.requires_role("user")
    def post(self) -> dict[str, Any]:
        body = request.get_json()
        message = flask_rbac.current_claude().messages.create(
            model=body["model"],
            max_tokens=body["max_tokens"],
            messages=[{"role": "user", "content": "hi"}],
            **extra(body),
        )
        return {"model": message.model}


def flask_app(rbac: RBAC) -> Flask:
    app = Flask(__name__)
    app.config.update(TESTING=True)
    flask_rbac.ClaudeRBAC(app, rbac=rbac, principal_loader=lambda: POWER)
    team = Blueprint("team", __name__, url_prefix="/team")
    team.add_url_rule("/chat", view_func=TeamChat.as_view("chat"))
    app.register_blueprint(team)
    return app


@pytest.mark.parametrize("framework", ["fastapi", "starlette", "flask"])
def test_an_endpoint_guard_keeps_the_outer_narrowing(framework: str, fake_claude: FakeClaude) -> None:
    rbac = make_rbac(fake_claude)
    if framework == "flask":
        with rbac:
            client = flask_app(rbac).test_client()
            opus = client.post("/team/chat", json={"model": OPUS, "max_tokens": 4000})
            haiku = client.post("/team/chat", json={"model": HAIKU, "max_tokens": 4000})
            search = client.post("/team/chat", json={"model": HAIKU, "max_tokens": 9, "tools": [SEARCH]})
    else:
        app = fastapi_app(rbac) if framework == "fastapi" else starlette_app(rbac)
        with TestClient(app) as asgi_client:
            opus = asgi_client.post("/team/chat", json={"model": OPUS, "max_tokens": 4000})
            haiku = asgi_client.post("/team/chat", json={"model": HAIKU, "max_tokens": 4000})
            search = asgi_client.post("/team/chat", json={"model": HAIKU, "max_tokens": 9, "tools": [SEARCH]})
            asgi_client.portal.call(rbac.aclose)  # type: ignore[union-attr]

    assert opus.status_code == 403, "the router's haiku-only narrowing must survive the endpoint's guard"
    body = opus.json() if framework != "flask" else opus.get_json()
    assert body["error"]["error_code"] == "model_not_allowed"
    assert haiku.status_code == 200
    assert search.status_code == 403, "power may search the web, but not on a route narrowed to client tools"
    assert (search.json() if framework != "flask" else search.get_json())["error"]["error_code"] == "tool_not_allowed"
    (sent,) = fake_claude.calls()  # opus never left the process
    assert sent.json["model"] == HAIKU
    assert sent.json["max_tokens"] == 256, "clamped to the outer guard's cap, not the power role's 4096"
