"""A route's own spend limit, declared where the route is: ``requires_role(..., spend={"day": ...})`` in every
framework lowers the role's dollars on that route, refuses with a 429 ``spend_limit_exceeded`` and a
``Retry-After`` to the next UTC midnight, and leaves the role's other routes alone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from anthropic import AsyncAnthropic
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from flask import Flask

from claude_rbac import RBAC, Principal
from claude_rbac.integrations import fastapi as fastapi_rbac
from claude_rbac.integrations import flask as flask_rbac
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-spend-routes-00000000000000000000000000000-SPND"
POLICY = {"roles": {"intern": {"models": ["claude-haiku-4-5"], "max_tokens": 100, "spend": {"day": 1}}}}
# FakeClaude answers 100 input + 100 output tokens: $0.0006 a haiku call, reserved and used alike.
ROUTE_LIMIT = {"day": 0.0012}
ASK = {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


CheapClaude = Annotated[AsyncAnthropic, Depends(fastapi_rbac.requires_role("intern", spend=ROUTE_LIMIT))]
InternClaude = Annotated[AsyncAnthropic, Depends(fastapi_rbac.requires_role("intern"))]


def exact(body: Any) -> int:
    return 100


@pytest.fixture
def fake() -> Iterator[FakeClaude]:
    with FakeClaude(usage={"input_tokens": 100, "output_tokens": 100}) as running:
        yield running


@pytest.fixture
def rbac(fake: FakeClaude) -> Iterator[RBAC]:
    with RBAC(POLICY, api_key=KEY, base_url=fake.url, token_estimator=exact) as built:
        yield built


def flask_app(rbac: RBAC) -> Flask:
    app = Flask(__name__)
    flask_rbac.ClaudeRBAC(app, rbac=rbac, principal_loader=lambda: Principal("alice", "intern"))

    @app.post("/cheap")
    @flask_rbac.requires_role("intern", spend=ROUTE_LIMIT)
    def cheap() -> dict[str, str]:
        return {"id": flask_rbac.current_claude().messages.create(**ASK).id}

    @app.post("/chat")
    @flask_rbac.requires_role("intern")
    def chat() -> dict[str, str]:
        return {"id": flask_rbac.current_claude().messages.create(**ASK).id}

    return app


def fastapi_app(rbac: RBAC) -> FastAPI:
    app = FastAPI()
    app.add_middleware(
        fastapi_rbac.RBACMiddleware, rbac=rbac, principal_loader=lambda request: Principal("alice", "intern")
    )

    @app.post("/cheap")
    async def cheap(claude: CheapClaude) -> dict[str, str]:
        return {"id": (await claude.messages.create(**ASK)).id}

    @app.post("/chat")
    async def chat(claude: InternClaude) -> dict[str, str]:
        return {"id": (await claude.messages.create(**ASK)).id}

    return app


def seconds_to_midnight() -> float:
    now = dt.datetime.now(dt.timezone.utc)
    midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


@pytest.mark.parametrize("framework", ["flask", "fastapi"])
def test_a_route_spend_limit_refuses_on_that_route_only(framework: str, rbac: RBAC, fake: FakeClaude) -> None:
    app = flask_app(rbac) if framework == "flask" else fastapi_app(rbac)
    http: Any = app.test_client() if framework == "flask" else TestClient(app)
    assert [http.post("/cheap").status_code for _ in range(2)] == [200, 200]
    refused = http.post("/cheap")
    assert refused.status_code == 429
    body = refused.get_json() if framework == "flask" else refused.json()
    assert body["error"]["error_code"] == "spend_limit_exceeded"
    assert "This route's spend limit for this day" in body["error"]["message"]
    assert abs(int(refused.headers["Retry-After"]) - seconds_to_midnight()) <= 2
    assert http.post("/chat").status_code == 200, "the role's own $1 a day still serves its other routes"
    assert fake.count() == 3
    windows = {(window.scope, window.period): window.used for window in rbac.spend(Principal("alice", "intern"))}
    assert str(windows[("principal", "day")]) == "0.0018"
