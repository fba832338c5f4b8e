"""Guards inside a mounted Starlette or FastAPI app answer 401/403/429, not 500, on a real uvicorn.

A mounted app has its own error middleware, which catches our exception before ``RBACMiddleware`` (on the
outer app) can answer it: every denial was a 500 and a traceback in the log, for anyone to provoke.
``RBACMiddleware`` installs the Anthropic error handler on the apps mounted under it at startup.

No ``from __future__ import annotations``: FastAPI resolves the endpoint signatures at decoration time.
"""

# ruff: noqa: B008

from typing import Any

import httpx
import pytest
from anthropic import AsyncAnthropic
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from claude_rbac import RBAC, RBACError
from claude_rbac.integrations import fastapi as fastapi_rbac
from claude_rbac.integrations import starlette as starlette_rbac
from claude_rbac.testing import FakeClaude

from .conftest import TokenBackend, bearer, closing_lifespan, uvicorn_server

HAIKU, OPUS = "claude-haiku-4-5", "claude-opus-4-7"


@starlette_rbac.requires_role("user")
async def starlette_chat(request: Request) -> Response:
    claude = starlette_rbac.get_claude(request)
    message = await claude.messages.create(
        model=request.query_params.get("model", HAIKU), max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    return JSONResponse({"model": message.model})


def starlette_app(rbac: RBAC) -> Starlette:
    inner = Starlette(routes=[Route("/chat", starlette_chat)])
    deeper = Starlette(routes=[Mount("/inner", app=inner)])
    return Starlette(
        routes=[Mount("/sub", app=inner), Mount("/two-levels", app=deeper), Route("/api/me", PlainTextResponse)],
        middleware=[
            Middleware(AuthenticationMiddleware, backend=TokenBackend()),
            Middleware(starlette_rbac.RBACMiddleware, rbac=rbac),
        ],
        lifespan=closing_lifespan(rbac),
    )


def fastapi_app(rbac: RBAC) -> FastAPI:
    sub = FastAPI()

    @sub.get("/chat")
    async def chat(model: str = HAIKU, claude: AsyncAnthropic = Depends(fastapi_rbac.requires_role("user"))) -> Any:
        message = await claude.messages.create(model=model, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        return {"model": message.model}

    app = FastAPI(lifespan=closing_lifespan(rbac))
    app.add_middleware(fastapi_rbac.RBACMiddleware, rbac=rbac)
    app.add_middleware(AuthenticationMiddleware, backend=TokenBackend())
    app.mount("/sub", sub)
    return app


@pytest.mark.parametrize(
    ("framework", "path"),
    [
        pytest.param("starlette", "/sub/chat", id="starlette"),
        pytest.param("starlette", "/two-levels/inner/chat", id="starlette-two-levels"),
        pytest.param("fastapi", "/sub/chat", id="fastapi"),
    ],
)
def test_a_guard_in_a_mounted_app_answers_401_403_on_uvicorn(
    make_rbac: Any, fake_claude: FakeClaude, framework: str, path: str
) -> None:
    rbac = make_rbac()
    app = starlette_app(rbac) if framework == "starlette" else fastapi_app(rbac)
    with uvicorn_server(app) as url, httpx.Client(base_url=url, timeout=5) as http:
        anonymous = http.get(path)
        viewer = http.get(path, headers=bearer("vera"))
        opus = http.get(path, params={"model": OPUS}, headers=bearer("uma"))  # refused by the governed client
        user = http.get(path, headers=bearer("uma"))
    assert (anonymous.status_code, anonymous.json()["error"]["error_code"]) == (401, "unauthenticated")
    assert (viewer.status_code, viewer.json()["error"]["error_code"]) == (403, "role_insufficient")
    assert (opus.status_code, opus.json()["error"]["error_code"]) == (403, "model_not_allowed")
    assert user.status_code == 200
    assert fake_claude.count() == 1


def test_a_mounted_apps_own_handler_is_kept(make_rbac: Any) -> None:
    async def teapot(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("the sub-app's own answer", status_code=418)

    rbac = make_rbac()
    inner = Starlette(routes=[Route("/chat", starlette_chat)], exception_handlers={RBACError: teapot})
    app = Starlette(
        routes=[Mount("/sub", app=inner)],
        middleware=[Middleware(starlette_rbac.RBACMiddleware, rbac=rbac)],
        lifespan=closing_lifespan(rbac),
    )
    with TestClient(app) as client:
        assert client.get("/sub/chat").status_code == 418


def test_without_lifespan_a_mounted_guard_fails_loudly(rbac: RBAC) -> None:
    """No startup, no handler on the mounted app: say what to do rather than answer a bare 500 on denials."""
    client = TestClient(starlette_app(rbac))  # not entered: the lifespan never runs
    with pytest.raises(RuntimeError, match="mounted"):
        client.get("/sub/chat", headers=bearer("uma"))


def test_a_starlette_app_wrapped_from_outside_answers_denials(rbac: RBAC) -> None:
    """``RBACMiddleware(Starlette(...))``: the app's own error middleware sits inside ours."""
    inner = Starlette(routes=[Route("/chat", starlette_chat)], lifespan=closing_lifespan(rbac))
    app = AuthenticationMiddleware(starlette_rbac.RBACMiddleware(inner, rbac=rbac), backend=TokenBackend())
    with TestClient(app) as client:
        anonymous = client.get("/chat")
        viewer = client.get("/chat", headers=bearer("vera"))
    assert (anonymous.status_code, anonymous.json()["error"]["error_code"]) == (401, "unauthenticated")
    assert (viewer.status_code, viewer.json()["error"]["error_code"]) == (403, "role_insufficient")
