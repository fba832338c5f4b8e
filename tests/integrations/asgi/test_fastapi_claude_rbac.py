"""FastAPI with the app's own identity dependency and no middleware: ``ClaudeRBAC`` installs what it needs.

Before it, ``requires_role(..., rbac=rbac, principal_loader=...)`` on every route, plus an exception handler
the app had to remember: forgetting it turned every denial into a bare 500; forgetting ``rbac=`` failed on
the first request. ``ClaudeRBAC(app, rbac=..., principal_loader=...)`` registers the Anthropic error handler
and the OpenAPI errors once; ``claude.requires_role(...)`` is the guard without the repetition.

No ``from __future__ import annotations``: FastAPI resolves the endpoint signatures at decoration time.
"""

# ruff: noqa: B008

import inspect
from typing import Annotated, Any

import httpx
import pytest
from anthropic import AsyncAnthropic
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer
from fastapi.testclient import TestClient

from claude_rbac import RBAC, PolicyError, Principal, RBACError
from claude_rbac.integrations.fastapi import ClaudeRBAC, rbac_exception_handler, requires_role
from claude_rbac.policy import GRANT_KEYS, Narrowing
from claude_rbac.testing import FakeClaude

from .conftest import TOKENS, bearer, closing_lifespan, route_decisions, uvicorn_server

SHARED = ["role", "models", "max_tokens", "rpm", "name", *GRANT_KEYS, "spend"]
"""``requires_role``'s keywords in every integration (tests/integrations/test_vocabulary.py)."""

HAIKU, OPUS = "claude-haiku-4-5", "claude-opus-4-7"
oauth2 = OAuth2PasswordBearer(tokenUrl="/token")


async def current_principal(token: Annotated[str, Depends(oauth2)]) -> Principal:
    """The app's own identity: a bearer token looked up on the server."""
    if token not in TOKENS:
        raise HTTPException(401, "Invalid token", headers={"WWW-Authenticate": "Bearer"})
    return Principal(*TOKENS[token])


async def ask(claude: AsyncAnthropic, model: str) -> dict[str, Any]:
    message = await claude.messages.create(model=model, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    return {"model": message.model}


def claude_app(rbac: RBAC) -> FastAPI:
    app = FastAPI(lifespan=closing_lifespan(rbac))
    claude = ClaudeRBAC(app, rbac=rbac, principal_loader=current_principal)

    @app.post("/chat")
    async def chat(model: str = HAIKU, client: AsyncAnthropic = Depends(claude.requires_role("user"))) -> Any:
        return await ask(client, model)

    @app.get("/admin", dependencies=[Depends(claude.requires_role("admin"))])
    async def admin() -> dict[str, str]:
        return {"page": "admin"}

    return app


def test_claude_rbac_answers_denials_on_uvicorn(make_rbac: Any, fake_claude: FakeClaude, span_exporter: Any) -> None:
    rbac = make_rbac()
    with uvicorn_server(claude_app(rbac)) as url, httpx.Client(base_url=url, timeout=5) as http:
        viewer = http.post("/chat", headers=bearer("vera"))
        opus = http.post("/chat", params={"model": OPUS}, headers=bearer("uma"))
        admin_page = http.get("/admin", headers=bearer("paul"))
        allowed = http.post("/chat", headers=bearer("uma"))
        anonymous = http.post("/chat")
        schema = http.get("/openapi.json").json()
    assert (viewer.status_code, viewer.json()["error"]["error_code"]) == (403, "role_insufficient")
    assert (opus.status_code, opus.json()["error"]["error_code"]) == (403, "model_not_allowed")
    assert (admin_page.status_code, admin_page.json()["error"]["type"]) == (403, "permission_error")
    assert allowed.status_code == 200
    assert anonymous.status_code == 401, "OAuth2PasswordBearer answers for itself"
    assert fake_claude.count() == 1
    assert route_decisions(span_exporter)[:2] == [("vera", "deny", "role_insufficient"), ("uma", "allow", "allowed")]
    for path, method in [("/chat", "post"), ("/admin", "get")]:
        responses = schema["paths"][path][method]["responses"]
        assert {"401", "403", "429", "503"} <= set(responses), path


def test_claude_requires_role_has_the_shared_signature_and_checks_the_role_at_once(rbac: RBAC) -> None:
    claude = ClaudeRBAC(rbac=rbac, principal_loader=current_principal)
    assert list(inspect.signature(claude.requires_role).parameters) == ["role", "narrowing"]
    assert list(Narrowing.__annotations__) == SHARED[1:]
    with pytest.raises(PolicyError, match="superuser"):
        claude.requires_role("superuser")
    with pytest.raises(TypeError, match="RBAC"):
        ClaudeRBAC(rbac="memory://", principal_loader=current_principal)  # type: ignore[arg-type]


def test_an_apps_own_rbac_error_handler_is_kept(rbac: RBAC) -> None:
    async def teapot(request: Request, exc: Exception) -> Any:
        return httpx.Response(418)

    app = FastAPI(exception_handlers={RBACError: teapot})
    ClaudeRBAC(app, rbac=rbac, principal_loader=current_principal)
    assert app.exception_handlers[RBACError] is teapot


def test_a_bare_dependency_without_a_handler_fails_loudly_and_says_what_to_add(rbac: RBAC) -> None:
    """Not a 500 on denials only: the first request, allowed or not, names the fix."""
    app = FastAPI()

    @app.post("/chat")
    async def chat(
        client: AsyncAnthropic = Depends(requires_role("user", rbac=rbac, principal_loader=current_principal)),
    ) -> Any:
        return {"ok": True}

    with TestClient(app) as client, pytest.raises(RuntimeError, match=r"ClaudeRBAC\(app"):
        client.post("/chat", headers=bearer("uma"))


def test_a_bare_dependency_without_rbac_says_what_to_add() -> None:
    app = FastAPI(exception_handlers={RBACError: rbac_exception_handler})

    @app.post("/chat")
    async def chat(client: AsyncAnthropic = Depends(requires_role("user", principal_loader=current_principal))) -> Any:
        return {"ok": True}

    with TestClient(app) as client, pytest.raises(RuntimeError, match=r"ClaudeRBAC\(app, rbac="):
        client.post("/chat", headers=bearer("uma"))
