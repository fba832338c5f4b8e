"""A router's (or the app's) ``requires_role(..., max_tokens=64)`` narrows every endpoint under it.

No ``from __future__ import annotations``: FastAPI resolves the endpoint signatures at decoration time.
"""

# ruff: noqa: B008

from typing import Any

import pytest
from anthropic import AsyncAnthropic
from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.middleware.authentication import AuthenticationMiddleware

from claude_rbac import RBAC
from claude_rbac.integrations.fastapi import RBACMiddleware, get_claude, requires_role
from claude_rbac.testing import FakeClaude

from .conftest import TokenBackend, bearer, serving

HAIKU = "claude-haiku-4-5"


async def ask(claude: Any) -> dict[str, Any]:
    message = await claude.messages.create(model=HAIKU, max_tokens=500, messages=[{"role": "user", "content": "hi"}])
    return {"model": message.model}


def narrowed_app(rbac: RBAC) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RBACMiddleware, rbac=rbac)
    app.add_middleware(AuthenticationMiddleware, backend=TokenBackend())
    router = APIRouter(prefix="/narrow", dependencies=[Depends(requires_role("user", max_tokens=64))])

    @router.post("/own-guard")
    async def own_guard(claude: AsyncAnthropic = Depends(requires_role("user"))) -> Any:
        return await ask(claude)

    @router.post("/get-claude")
    async def from_request(request: Request) -> Any:
        return await ask(get_claude(request))

    app.include_router(router)
    whole = FastAPI(dependencies=[Depends(requires_role("user", max_tokens=32))])
    whole.add_middleware(RBACMiddleware, rbac=rbac)
    whole.add_middleware(AuthenticationMiddleware, backend=TokenBackend())

    @whole.post("/any")
    async def anything(claude: AsyncAnthropic = Depends(requires_role("user"))) -> Any:
        return await ask(claude)

    app.mount("/whole", whole)
    return app


@pytest.mark.parametrize(
    ("path", "cap"),
    [
        pytest.param("/narrow/own-guard", 64, id="router-guard+endpoint-guard"),
        pytest.param("/narrow/get-claude", 64, id="router-guard+get_claude"),
        pytest.param("/whole/any", 32, id="app-dependencies+endpoint-guard"),
    ],
)
def test_a_router_level_narrowing_reaches_the_endpoints_client(
    rbac: RBAC, fake_claude: FakeClaude, path: str, cap: int
) -> None:
    with serving(narrowed_app(rbac), rbac) as client:
        response = client.post(path, headers=bearer("paul"))  # power: 4096 tokens of its own
    assert response.status_code == 200, response.text
    (call,) = fake_claude.calls()
    assert call.json["max_tokens"] == cap
