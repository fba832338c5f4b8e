"""Opt-in RateLimit-* headers on guarded Starlette and FastAPI routes (the storage is read through limits.aio)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import pytest
from anthropic import AsyncAnthropic
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from claude_rbac import RBAC
from claude_rbac.integrations import fastapi as fastapi_rbac
from claude_rbac.integrations.starlette import RBACMiddleware, get_claude, requires_role
from claude_rbac.testing import FakeClaude

from .conftest import TokenBackend, bearer, serving

ASK: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def starlette_app(rbac: RBAC, style: str | None) -> Starlette:
    @requires_role("user", rpm=3)
    async def chat(request: Request) -> JSONResponse:
        await get_claude(request).messages.create(**ASK)
        return JSONResponse({"ok": True})

    async def public(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[Route("/chat", chat, methods=["POST"]), Route("/public", public)],
        middleware=[
            Middleware(AuthenticationMiddleware, backend=TokenBackend()),
            Middleware(RBACMiddleware, rbac=rbac, rate_limit_headers=style),
        ],
    )


def fastapi_app(rbac: RBAC, style: str | None) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RBACMiddleware, rbac=rbac, rate_limit_headers=style)
    app.add_middleware(AuthenticationMiddleware, backend=TokenBackend())

    @app.post("/chat")
    async def chat(claude: Annotated[AsyncAnthropic, Depends(fastapi_rbac.requires_role("user", rpm=3))]) -> dict:
        await claude.messages.create(**ASK)
        return {"ok": True}

    @app.get("/public")
    async def public() -> dict:
        return {"ok": True}

    return app


@pytest.mark.parametrize("build", [starlette_app, fastapi_app])
@pytest.mark.parametrize(("style", "prefix"), [("ietf", "ratelimit"), ("x", "x-ratelimit")])
def test_guarded_routes_carry_the_headers(
    build: Callable[..., Any], style: str, prefix: str, make_rbac: Callable[..., RBAC], fake_claude: FakeClaude
) -> None:
    rbac = make_rbac()
    with serving(build(rbac, style), rbac) as client:
        first = client.post("/chat", headers=bearer("uma"))
        second = client.post("/chat", headers=bearer("uma"))
        public = client.get("/public", headers=bearer("uma"))
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.headers[f"{prefix}-limit"], first.headers[f"{prefix}-remaining"]) == ("3", "2")
    assert second.headers[f"{prefix}-remaining"] == "1"
    assert 0 <= int(first.headers[f"{prefix}-reset"]) <= 60
    assert f"{prefix}-limit" not in public.headers  # only routes a guard admitted
    assert fake_claude.count() == 2


@pytest.mark.parametrize("build", [starlette_app, fastapi_app])
def test_off_by_default(build: Callable[..., Any], make_rbac: Callable[..., RBAC]) -> None:
    rbac = make_rbac()
    with serving(build(rbac, None), rbac) as client:
        response = client.post("/chat", headers=bearer("uma"))
    assert response.status_code == 200
    assert not any(name.startswith(("ratelimit", "x-ratelimit")) for name in response.headers)


def test_a_bad_style_is_refused(make_rbac: Callable[..., RBAC]) -> None:
    with pytest.raises(ValueError, match="rate_limit_headers"):
        RBACMiddleware(starlette_app(make_rbac(), None), rbac=make_rbac(), rate_limit_headers="draft")  # type: ignore[arg-type]
