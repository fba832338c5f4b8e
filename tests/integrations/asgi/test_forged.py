"""Forged headers, query parameters and cookies change nothing: roles come from the app's trusted identity only."""

from __future__ import annotations

import base64
import json
from typing import Any

import itsdangerous
import pytest
from anthropic import AsyncAnthropic
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from claude_rbac import RBAC
from claude_rbac.integrations import fastapi as fastapi_rbac
from claude_rbac.integrations.starlette import RBACMiddleware, get_claude, requires_role
from claude_rbac.testing import FakeClaude

from .conftest import FORGED_COOKIES, FORGED_HEADERS, FORGED_QUERY, TokenBackend, bearer, route_decisions, serving

SECRET = "session-secret"


@requires_role("admin")
async def admin_chat(request: Request) -> Response:
    message = await get_claude(request).messages.create(
        model="claude-opus-4-7", max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
    )
    return JSONResponse({"model": message.model})


async def login(request: Request) -> Response:
    request.session["user_id"] = "vera"  # the signed session says who; the role is looked up on the server
    return PlainTextResponse("ok")


def starlette_app(rbac: RBAC) -> Starlette:
    return Starlette(
        routes=[Route("/admin-chat", admin_chat), Route("/login", login, methods=["POST"])],
        middleware=[
            Middleware(SessionMiddleware, secret_key=SECRET),
            Middleware(AuthenticationMiddleware, backend=TokenBackend()),
            Middleware(RBACMiddleware, rbac=rbac, role_loader={"ada": "admin", "vera": "viewer"}.get),
        ],
    )


def fastapi_app(rbac: RBAC) -> FastAPI:
    app = FastAPI()
    app.add_middleware(fastapi_rbac.RBACMiddleware, rbac=rbac)
    app.add_middleware(AuthenticationMiddleware, backend=TokenBackend())

    @app.post("/admin-chat")
    async def chat(claude: AsyncAnthropic = Depends(fastapi_rbac.requires_role("admin"))) -> Any:  # noqa: B008
        message = await claude.messages.create(
            model="claude-opus-4-7", max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
        )
        return {"model": message.model}

    return app


def session_cookie(data: dict[str, Any], secret: str | None) -> str:
    payload = base64.b64encode(json.dumps(data).encode())
    return (itsdangerous.TimestampSigner(secret).sign(payload) if secret else payload).decode()


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
def test_forged_inputs_change_nothing(rbac: RBAC, fake_claude: FakeClaude, span_exporter: Any, framework: str) -> None:
    app = starlette_app(rbac) if framework == "starlette" else fastapi_app(rbac)
    method = "GET" if framework == "starlette" else "POST"
    url = f"/admin-chat?{FORGED_QUERY}"
    with serving(app, rbac) as client:
        client.cookies.update(FORGED_COOKIES)
        anonymous = client.request(method, url, headers=FORGED_HEADERS)
        viewer = client.request(method, url, headers={**FORGED_HEADERS, **bearer("vera")})
        # The same requests, honest: the same answers.
        client.cookies.clear()
        honest_anonymous = client.request(method, "/admin-chat")
        honest_viewer = client.request(method, "/admin-chat", headers=bearer("vera"))
        admin = client.request(method, "/admin-chat", headers=bearer("ada"))

    assert (anonymous.status_code, honest_anonymous.status_code) == (401, 401)
    assert anonymous.json() == honest_anonymous.json()
    assert (viewer.status_code, honest_viewer.status_code) == (403, 403)
    assert viewer.json() == honest_viewer.json()
    assert admin.status_code == 200, "the route works for a real admin"
    assert fake_claude.count() == 1
    assert route_decisions(span_exporter) == [
        (None, "deny", "unauthenticated"),
        ("vera", "deny", "role_insufficient"),
        (None, "deny", "unauthenticated"),
        ("vera", "deny", "role_insufficient"),
        ("ada", "allow", "allowed"),
    ]


@pytest.mark.parametrize(
    ("cookie", "expected"),
    [
        pytest.param(session_cookie({"user_id": "ada", "role": "admin"}, None), 401, id="unsigned"),
        pytest.param(session_cookie({"user_id": "ada", "role": "admin"}, "guessed-secret"), 401, id="wrong-key"),
        pytest.param(session_cookie({"user_id": "ada", "role": "admin"}, SECRET), 200, id="control-real-key"),
    ],
)
def test_forged_session_cookie(rbac: RBAC, fake_claude: FakeClaude, cookie: str, expected: int) -> None:
    with serving(starlette_app(rbac), rbac) as client:
        client.cookies.set("session", cookie)
        response = client.get("/admin-chat")
    assert response.status_code == expected
    assert fake_claude.count() == (1 if expected == 200 else 0)


def test_session_role_tampering_keeps_the_signed_role(rbac: RBAC, fake_claude: FakeClaude) -> None:
    with serving(starlette_app(rbac), rbac) as client:
        client.post("/login")
        signed = client.cookies["session"]
        _, _, timestamp_and_signature = signed.partition(".")
        tampered = base64.b64encode(json.dumps({"user_id": "vera", "role": "admin"}).encode()).decode()
        client.cookies.clear()
        client.cookies.set("session", f"{tampered}.{timestamp_and_signature}")
        forged = client.get("/admin-chat")
        client.cookies.clear()
        client.cookies.set("session", signed)
        honest = client.get("/admin-chat")
    assert forged.status_code == 401, "a tampered session is no session"
    assert honest.status_code == 403, "the signed session says viewer"
    assert fake_claude.requests == []
