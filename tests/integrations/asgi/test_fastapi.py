"""FastAPI: the requires_role dependency in every form, principal_loader, OpenAPI, websockets.

No ``from __future__ import annotations`` here: FastAPI resolves the local ``Annotated`` aliases at
decoration time, which string annotations would hide. ``Depends(...)`` defaults are FastAPI's idiom.
"""

# ruff: noqa: B008

from typing import Annotated, Any

import pytest
from anthropic import AsyncAnthropic
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, WebSocket
from fastapi.security import OAuth2PasswordBearer
from opentelemetry.trace import SpanKind, StatusCode
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.websockets import WebSocketDisconnect

from claude_rbac import RBAC, PolicyError, Principal, RBACError
from claude_rbac.integrations.fastapi import (
    ERROR_RESPONSES,
    RBACMiddleware,
    document_errors,
    get_principal,
    rbac_exception_handler,
    requires_role,
)
from claude_rbac.testing import FakeClaude

from .conftest import TOKENS, TokenBackend, authorize_spans, bearer, policy_with, route_decisions, serving

HAIKU = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-6"
OPUS = "claude-opus-4-7"

PowerClaude = Annotated[AsyncAnthropic, Depends(requires_role("power"))]


async def ask(claude: AsyncAnthropic, model: str = HAIKU) -> dict[str, Any]:
    message = await claude.messages.create(model=model, max_tokens=20, messages=[{"role": "user", "content": "Hi"}])
    return {"text": message.content[0].text, "model": message.model}  # type: ignore[union-attr]


def build_app(rbac: RBAC, *, app_dependencies: list[Any] | None = None) -> FastAPI:
    app = FastAPI(dependencies=app_dependencies or [])
    app.add_middleware(RBACMiddleware, rbac=rbac)
    app.add_middleware(AuthenticationMiddleware, backend=TokenBackend())  # added last: runs first

    @app.post("/depends")
    async def with_depends(model: str = HAIKU, claude: AsyncAnthropic = Depends(requires_role("user"))) -> Any:
        return await ask(claude, model)

    @app.post("/annotated")
    async def with_alias(claude: PowerClaude) -> Any:
        return await ask(claude, SONNET)

    @app.get("/guard-only", dependencies=[Depends(requires_role("admin"))])
    async def guard_only() -> dict[str, str]:
        return {"page": "admin"}

    @app.post("/narrowed")
    async def narrowed(
        model: str, claude: AsyncAnthropic = Depends(requires_role("power", models=["claude-sonnet-*"], max_tokens=32))
    ) -> Any:
        return await ask(claude, model)

    router = APIRouter(prefix="/team", dependencies=[Depends(requires_role("power"))])

    @router.get("/report")
    async def report() -> dict[str, str]:
        return {"report": "ok"}

    app.include_router(router)

    @app.get("/public")
    async def public() -> dict[str, Any]:
        return {"ok": True}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, claude: AsyncAnthropic = Depends(requires_role("user"))) -> None:
        await websocket.accept()
        prompt = await websocket.receive_text()
        message = await claude.messages.create(
            model=HAIKU, max_tokens=20, messages=[{"role": "user", "content": prompt}]
        )
        await websocket.send_text(message.content[0].text)  # type: ignore[union-attr]
        await websocket.close()

    return app


@pytest.fixture
def client(rbac: RBAC) -> Any:
    with serving(build_app(rbac), rbac) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "role_needed", "calls_claude"),
    [
        ("POST", "/depends", "user", True),
        ("POST", "/annotated", "power", True),
        ("GET", "/guard-only", "admin", False),
        ("GET", "/team/report", "power", False),
    ],
)
def test_dependency_forms(
    client: Any,
    fake_claude: FakeClaude,
    span_exporter: Any,
    method: str,
    path: str,
    role_needed: str,
    calls_claude: bool,
) -> None:
    names = ["vera", "uma", "paul", "ada"]
    needed = ["viewer", "user", "power", "admin"].index(role_needed)

    response = client.request(method, path)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    for index, name in enumerate(names):
        response = client.request(method, path, headers=bearer(name))
        if index < needed:
            assert response.status_code == 403, name
            assert response.json()["error"] == {
                "type": "permission_error",
                "message": f"Role {TOKENS['t-' + name][1]!r} may not use this route.",
                "error_code": "role_insufficient",
            }
        else:
            assert response.status_code == 200, (name, response.text)
    allowed = len(names) - needed
    assert fake_claude.count() == (allowed if calls_claude else 0)
    decisions = route_decisions(span_exporter)
    assert [d[1] for d in decisions] == ["deny"] + ["deny"] * needed + ["allow"] * allowed
    assert decisions[-1][0] == "ada"


def test_audit_names_the_route_and_marks_the_server_span(client: Any, span_exporter: Any) -> None:
    assert client.get("/team/report", headers=bearer("paul")).status_code == 200
    guard = [a for a in authorize_spans(span_exporter) if "claude_rbac.required_role" in a]
    assert guard[0]["claude_rbac.route"] == "/team/report", "the router prefix is part of the route"
    server = [s for s in span_exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert len(server) == 1, "FastAPI's own server span"
    assert server[0].attributes["enduser.id"] == "paul"
    assert server[0].attributes["claude_rbac.decision"] == "allow"
    assert tuple(server[0].attributes["user.roles"]) == ("power",)

    span_exporter.clear()
    assert client.get("/team/report", headers=bearer("uma")).status_code == 403
    (server,) = [s for s in span_exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert server.attributes["claude_rbac.decision"] == "deny"
    assert server.attributes["claude_rbac.decision.reason"] == "role_insufficient"
    assert server.status.status_code == StatusCode.UNSET, "a denial is a decision, not a server error"
    assert not [event for event in server.events if event.name == "exception"]


def test_app_level_dependencies(rbac: RBAC, fake_claude: FakeClaude) -> None:
    app = build_app(rbac, app_dependencies=[Depends(requires_role("viewer"))])
    with serving(app, rbac) as client:
        assert client.get("/public").status_code == 401
        assert client.get("/public", headers=bearer("vera")).status_code == 200
        assert client.post("/depends", headers=bearer("vera")).status_code == 403
        assert client.post("/depends", headers=bearer("uma")).status_code == 200
    assert fake_claude.count() == 1


def test_the_dependency_yields_the_governed_client(client: Any, fake_claude: FakeClaude, span_exporter: Any) -> None:
    response = client.post("/depends", params={"model": OPUS}, headers=bearer("uma"))
    assert response.status_code == 403
    assert response.json()["error"]["error_code"] == "model_not_allowed"
    assert fake_claude.requests == []

    response = client.post("/narrowed", params={"model": SONNET}, headers=bearer("ada"))
    assert response.status_code == 200
    assert fake_claude.requests[-1].json["max_tokens"] == 20, "below the route cap: unchanged"
    response = client.post("/narrowed", params={"model": OPUS}, headers=bearer("ada"))
    assert response.status_code == 403, "the route narrows admin to sonnet"
    assert fake_claude.count() == 1
    calls = [s for s in span_exporter.get_finished_spans() if s.name == "anthropic.messages.create"]
    assert [c.attributes["claude_rbac.decision"] for c in calls] == ["deny", "allow", "deny"]
    call = calls[1]
    assert call.attributes["claude_rbac.route"] == "/narrowed"
    assert call.attributes["enduser.id"] == "ada"


def test_rate_limit_through_the_dependency(make_rbac: Any, fake_claude: FakeClaude, storage: str) -> None:
    """On memory and on Redis (the async client counts through ``async+redis://``)."""
    rbac = make_rbac(policy_with(rpm=1), storage=storage)
    with serving(build_app(rbac), rbac) as client:
        first = client.post("/depends", headers=bearer("uma"))
        second = client.post("/depends", headers=bearer("uma"))
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["retry-after"].isdigit()
    assert second.json()["error"]["error_code"] == "rate_limited"
    assert fake_claude.count() == 1


def test_websocket(client: Any, fake_claude: FakeClaude) -> None:
    with client.websocket_connect("/ws", headers=bearer("uma")) as ws:
        ws.send_text("Hello over a websocket")
        assert ws.receive_text().startswith("Hello from FakeClaude")
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/ws", headers=bearer("vera")):
        pass
    assert info.value.code == 1008
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/ws"):
        pass
    assert info.value.code == 1008
    assert fake_claude.count() == 1


# -- OpenAPI ------------------------------------------------------------------------------------------


def test_openapi_documents_the_anthropic_errors_on_guarded_routes(client: Any) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in [("/depends", "post"), ("/annotated", "post"), ("/guard-only", "get"), ("/team/report", "get")]:
        responses = paths[path][method]["responses"]
        assert {"401", "403", "429"} <= set(responses), path
        schema = responses["403"]["content"]["application/json"]["schema"]
        assert schema["required"] == ["type", "error"]
        assert set(schema["properties"]["error"]["properties"]) == {"type", "message", "error_code"}
        assert responses["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
        example = responses["401"]["content"]["application/json"]["example"]
        assert example["error"]["type"] == "authentication_error"
    assert "401" not in paths["/public"]["get"]["responses"], "unguarded routes are left alone"


def test_error_responses_can_be_declared_explicitly(rbac: RBAC) -> None:
    app = FastAPI()

    @app.get("/x", responses=ERROR_RESPONSES)
    async def x() -> dict[str, str]:
        return {}

    responses = app.openapi()["paths"]["/x"]["get"]["responses"]
    assert responses["429"]["content"]["application/json"]["schema"]["title"] == "AnthropicError"


def test_startup_fails_for_a_role_the_policy_lacks(rbac: RBAC) -> None:
    app = build_app(rbac)
    router = APIRouter()

    @router.get("/odd")
    async def odd(claude: AsyncAnthropic = Depends(requires_role("superuser"))) -> None: ...

    app.include_router(router)
    with pytest.raises(PolicyError, match="superuser"), serving(app, rbac):
        pass


def test_rbac_given_up_front_is_checked_at_declaration(rbac: RBAC) -> None:
    with pytest.raises(PolicyError, match="superuser"):
        requires_role("superuser", rbac=rbac)


# -- principal_loader: the app's own identity, no middleware --------------------------------------

oauth2 = OAuth2PasswordBearer(tokenUrl="/token")


async def current_principal(token: Annotated[str, Depends(oauth2)]) -> Principal:
    if token not in TOKENS:
        raise HTTPException(401, "Invalid token", headers={"WWW-Authenticate": "Bearer"})
    username, role = TOKENS[token]
    return Principal(username, role)


def oauth_app(rbac: RBAC) -> FastAPI:
    app = FastAPI(exception_handlers={RBACError: rbac_exception_handler})
    PowerFromToken = Annotated[
        AsyncAnthropic, Depends(requires_role("power", rbac=rbac, principal_loader=current_principal))
    ]

    @app.post("/chat")
    async def chat(claude: PowerFromToken, principal: Principal = Depends(current_principal)) -> Any:
        return {"user": principal.id, **(await ask(claude, SONNET))}

    document_errors(app)
    document_errors(app)  # twice is harmless
    return app


def test_principal_loader_without_middleware(rbac: RBAC, fake_claude: FakeClaude, span_exporter: Any) -> None:
    with serving(oauth_app(rbac), rbac) as client:
        missing = client.post("/chat")
        unknown = client.post("/chat", headers={"authorization": "Bearer nope"})
        user = client.post("/chat", headers=bearer("uma"))
        power = client.post("/chat", headers=bearer("paul"))
        schema = client.get("/openapi.json").json()
    assert missing.status_code == 401, "OAuth2PasswordBearer answers for itself"
    assert unknown.status_code == 401
    assert user.status_code == 403
    assert user.json()["error"]["error_code"] == "role_insufficient"
    assert power.status_code == 200
    assert power.json()["user"] == "paul"
    assert fake_claude.count() == 1
    assert route_decisions(span_exporter) == [("uma", "deny", "role_insufficient"), ("paul", "allow", "allowed")]
    assert "OAuth2PasswordBearer" in schema["components"]["securitySchemes"]
    responses = schema["paths"]["/chat"]["post"]["responses"]
    assert {"401", "403", "429", "503"} <= set(responses), "document_errors() without the middleware"
    assert responses["401"]["content"]["application/json"]["schema"]["title"] == "AnthropicError"


def test_principal_loader_returning_nonsense_denies(
    rbac: RBAC, fake_claude: FakeClaude, caplog: pytest.LogCaptureFixture
) -> None:
    def confused() -> dict[str, str]:
        return {"id": "ada", "role": "admin"}

    app = FastAPI(exception_handlers={RBACError: rbac_exception_handler})

    @app.post("/chat")
    async def chat(
        claude: AsyncAnthropic = Depends(requires_role("user", rbac=rbac, principal_loader=confused)),
    ) -> Any:
        return await ask(claude)

    with serving(app, rbac) as client:
        response = client.post("/chat")
    assert response.status_code == 401
    assert "not a Principal" in caplog.text
    assert fake_claude.requests == []


def test_principal_loader_wins_over_the_middleware(rbac: RBAC) -> None:
    async def always_uma() -> Principal:
        return Principal("uma", "user")

    app = build_app(rbac)

    @app.get("/who")
    async def who(claude: AsyncAnthropic = Depends(requires_role("user", principal_loader=always_uma))) -> Any:
        return {"ok": True}

    with serving(app, rbac) as client:
        assert client.get("/who", headers=bearer("vera")).status_code == 200
        assert client.get("/who").status_code == 200


def test_no_middleware_and_no_rbac_is_a_clear_error() -> None:
    app = FastAPI()

    @app.get("/")
    async def root(claude: AsyncAnthropic = Depends(requires_role("user"))) -> None: ...

    with serving(app, RBAC_FOR_ERRORS) as client, pytest.raises(RuntimeError, match="RBACMiddleware"):
        client.get("/")


RBAC_FOR_ERRORS = RBAC({"version": 1, "roles": {"user": {"models": ["claude-haiku-*"]}}}, api_key="sk-unused")


def test_get_principal_in_fastapi(rbac: RBAC) -> None:
    app = build_app(rbac)

    @app.get("/whoami")
    async def whoami(request: Request) -> Any:
        principal = get_principal(request)
        return {"id": principal.id if principal else None}

    with serving(app, rbac) as client:
        assert client.get("/whoami", headers=bearer("paul")).json() == {"id": "paul"}
        assert client.get("/whoami").json() == {"id": None}
