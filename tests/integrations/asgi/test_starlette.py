"""Starlette: requires_role on every endpoint kind, the default loader, get_claude, startup checks, errors."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint, WebSocketEndpoint
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from claude_rbac import RBAC, PolicyError, Principal, RBACError
from claude_rbac.integrations.starlette import (
    RBACMiddleware,
    get_claude,
    get_principal,
    rbac_exception_handler,
    requires_role,
)
from claude_rbac.testing import FakeClaude

from .conftest import TokenBackend, authorize_spans, bearer, policy_with, route_decisions, serving

HAIKU = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-6"
OPUS = "claude-opus-4-7"


async def ask(claude: anthropic.AsyncAnthropic, model: str = HAIKU, max_tokens: int = 20) -> dict[str, Any]:
    message = await claude.messages.create(
        model=model, max_tokens=max_tokens, messages=[{"role": "user", "content": "Hello"}]
    )
    return {"text": message.content[0].text, "model": message.model}  # type: ignore[union-attr]


def ask_sync(claude: anthropic.Anthropic, model: str = HAIKU) -> dict[str, Any]:
    message = claude.messages.create(model=model, max_tokens=20, messages=[{"role": "user", "content": "Hello"}])
    return {"text": message.content[0].text, "model": message.model}  # type: ignore[union-attr]


@requires_role("user")
async def async_chat(request: Request) -> Response:
    claude = get_claude(request)
    assert isinstance(claude, anthropic.AsyncAnthropic)  # a genuine one (a subclass that keeps its governor)
    return JSONResponse(await ask(claude, request.query_params.get("model", HAIKU)))


@requires_role("user")
def sync_chat(req: Request) -> Response:  # not named "request": found by type
    claude = get_claude(req)
    assert isinstance(claude, anthropic.Anthropic)
    return JSONResponse(ask_sync(claude))


@requires_role("power", models=["claude-sonnet-*"], max_tokens=64)
async def narrowed(request: Request) -> Response:
    claude = get_claude(request)
    model = request.query_params["model"]
    message = await claude.messages.create(
        model=model, max_tokens=1000, messages=[{"role": "user", "content": "Hello"}]
    )
    return JSONResponse({"model": message.model})


class Chat(HTTPEndpoint):
    @requires_role("power")
    async def get(self, request: Request) -> Response:
        return JSONResponse(await ask(get_claude(request), SONNET))

    @requires_role("admin")
    def post(self, request: Request) -> Response:
        return JSONResponse(ask_sync(get_claude(request), OPUS))


@requires_role("user")
async def ws_chat(websocket: WebSocket) -> None:
    await websocket.accept()
    prompt = await websocket.receive_text()
    claude = get_claude(websocket)
    message = await claude.messages.create(model=HAIKU, max_tokens=20, messages=[{"role": "user", "content": prompt}])
    await websocket.send_json({"text": message.content[0].text})
    await websocket.close()


class WsEndpoint(WebSocketEndpoint):
    encoding = "text"

    @requires_role("power")
    async def on_connect(self, websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(f"hello {get_principal(websocket).id}")  # type: ignore[union-attr]


@requires_role("viewer")
async def dashboard(request: Request) -> Response:
    return PlainTextResponse(f"dashboard for {get_principal(request).id}")  # type: ignore[union-attr]


async def public(request: Request) -> Response:
    principal = get_principal(request)
    return JSONResponse({"principal": principal.id if principal else None})


def routes() -> list[Any]:
    return [
        Route("/async", async_chat),
        Route("/sync", sync_chat),
        Route("/narrowed", narrowed),
        Route("/endpoint", Chat, methods=["GET", "POST"]),
        Route("/dashboard", dashboard),
        Route("/public", public),
        WebSocketRoute("/ws", ws_chat),
        WebSocketRoute("/ws-endpoint", WsEndpoint),
        Mount("/v1", routes=[Route("/async", async_chat)]),
    ]


def token_app(rbac: RBAC, **kwargs: Any) -> Starlette:
    return Starlette(
        routes=routes(),
        middleware=[
            Middleware(AuthenticationMiddleware, backend=TokenBackend()),
            Middleware(RBACMiddleware, rbac=rbac),
        ],
        **kwargs,
    )


@pytest.fixture
def client(rbac: RBAC) -> Any:
    with serving(token_app(rbac), rbac) as client:
        yield client


# -- every endpoint kind: 401 without a principal, 403 below the role, 200 at or above it ---------------


@pytest.mark.parametrize(
    ("method", "path", "role_needed"),
    [
        ("GET", "/async", "user"),
        ("GET", "/sync", "user"),
        ("GET", "/endpoint", "power"),
        ("POST", "/endpoint", "admin"),
        ("GET", "/v1/async", "user"),
    ],
)
def test_endpoint_kinds(
    client: TestClient, fake_claude: FakeClaude, span_exporter: Any, method: str, path: str, role_needed: str
) -> None:
    order = ["vera", "uma", "paul", "ada"]
    needed = ["viewer", "user", "power", "admin"].index(role_needed)

    response = client.request(method, path)
    assert response.status_code == 401
    assert response.json()["error"] == {
        "type": "authentication_error",
        "message": "Sign in to use this route.",
        "error_code": "unauthenticated",
    }
    for index, name in enumerate(order):
        response = client.request(method, path, headers=bearer(name))
        if index < needed:
            assert response.status_code == 403, name
            assert response.json()["error"]["error_code"] == "role_insufficient"
        else:
            assert response.status_code == 200, (name, response.text)
            assert response.json()["text"].startswith("Hello from FakeClaude")

    allowed = len(order) - needed
    assert fake_claude.count() == allowed, "denied requests never reach Claude"
    assert list(fake_claude.api_keys_seen) == ["sk-ant-test-0000"] * allowed
    decisions = route_decisions(span_exporter)
    assert decisions == [(None, "deny", "unauthenticated")] + [
        (name, "deny" if i < needed else "allow", "role_insufficient" if i < needed else "allowed")
        for i, name in enumerate(order)
    ]
    guard = next(
        a for a in authorize_spans(span_exporter) if a.get("enduser.id") == "ada" and "claude_rbac.required_role" in a
    )
    assert guard["claude_rbac.required_role"] == role_needed
    assert guard["claude_rbac.route"] == path
    assert guard["user.roles"] == ("admin",)


def test_route_template_is_recorded(client: TestClient, span_exporter: Any) -> None:
    client.get("/v1/async", headers=bearer("uma"))
    routes_seen = {a.get("claude_rbac.route") for a in authorize_spans(span_exporter)}
    assert routes_seen == {"/v1/async"}


def test_sync_and_async_endpoints_get_matching_clients(client: TestClient, span_exporter: Any) -> None:
    assert client.get("/async", headers=bearer("uma")).status_code == 200
    assert client.get("/sync", headers=bearer("uma")).status_code == 200
    calls = [s for s in span_exporter.get_finished_spans() if s.name == "anthropic.messages.create"]
    assert len(calls) == 2
    assert {c.attributes["claude_rbac.route"] for c in calls} == {"/async", "/sync"}
    assert all(c.attributes["enduser.id"] == "uma" for c in calls)


def test_viewer_page_needs_no_claude(client: TestClient, fake_claude: FakeClaude) -> None:
    assert client.get("/dashboard").status_code == 401
    response = client.get("/dashboard", headers=bearer("vera"))
    assert response.status_code == 200
    assert response.text == "dashboard for vera"
    assert fake_claude.requests == []


def test_public_route_sees_the_principal_without_a_guard(client: TestClient) -> None:
    assert client.get("/public").json() == {"principal": None}
    assert client.get("/public", headers=bearer("paul")).json() == {"principal": "paul"}


# -- route scope: narrowing the role -------------------------------------------------------------


def test_route_scope_narrows_models_and_max_tokens(client: TestClient, fake_claude: FakeClaude) -> None:
    response = client.get("/narrowed", params={"model": SONNET}, headers=bearer("paul"))
    assert response.status_code == 200
    assert fake_claude.requests[-1].json["max_tokens"] == 64, "clamped to the route's cap, not power's 4096"

    response = client.get("/narrowed", params={"model": OPUS}, headers=bearer("ada"))
    assert response.status_code == 403
    assert response.json()["error"]["error_code"] == "model_not_allowed"
    assert fake_claude.count() == 1, "the denied model never left the process"


def test_client_denial_in_the_handler_becomes_the_anthropic_error(client: TestClient, fake_claude: FakeClaude) -> None:
    response = client.get("/async", params={"model": OPUS}, headers=bearer("uma"))
    assert response.status_code == 403
    assert response.json() == {
        "type": "error",
        "error": {
            "type": "permission_error",
            "message": "Role 'user' may not use model 'claude-opus-4-7'.",
            "error_code": "model_not_allowed",
        },
    }
    assert fake_claude.requests == []


def test_rate_limit_is_429_with_retry_after(make_rbac: Any, fake_claude: FakeClaude) -> None:
    rbac = make_rbac(policy_with(rpm=2))
    with serving(token_app(rbac), rbac) as client:
        statuses = [client.get("/async", headers=bearer("uma")).status_code for _ in range(3)]
        limited = client.get("/async", headers=bearer("uma"))
    assert statuses == [200, 200, 429]
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert fake_claude.count() == 2


# -- websockets --------------------------------------------------------------------------------------


def test_websocket_allowed(client: TestClient, fake_claude: FakeClaude) -> None:
    with client.websocket_connect("/ws", headers=bearer("uma")) as ws:
        ws.send_text("Hi there")
        assert ws.receive_json()["text"].startswith("Hello from FakeClaude")
    assert fake_claude.calls()[0].json["messages"] == [{"role": "user", "content": "Hi there"}]


@pytest.mark.parametrize(("path", "who"), [("/ws", None), ("/ws", "vera"), ("/ws-endpoint", "uma")])
def test_websocket_denied_is_closed_with_1008(
    client: TestClient, fake_claude: FakeClaude, path: str, who: str | None, span_exporter: Any
) -> None:
    headers = bearer(who) if who else {}
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(path, headers=headers):
        pass
    assert info.value.code == 1008
    assert fake_claude.requests == []
    assert route_decisions(span_exporter)[-1][1] == "deny"


def test_websocket_endpoint_class(client: TestClient) -> None:
    with client.websocket_connect("/ws-endpoint", headers=bearer("paul")) as ws:
        assert ws.receive_text() == "hello paul"


# -- the default loader: AuthenticationMiddleware or the signed session ---------------------------------


def test_default_loader_reads_a_configurable_role_attribute(rbac: RBAC) -> None:
    class StaffUser:
        is_authenticated = True
        identity = "sam"
        display_name = "Sam"
        access_level = "power"

    class StaffBackend(TokenBackend):
        async def authenticate(self, conn: Any) -> Any:
            return (None, StaffUser()) if conn.headers.get("authorization") == "Bearer staff" else None

    app = Starlette(
        routes=[Route("/endpoint", Chat)],
        middleware=[
            Middleware(AuthenticationMiddleware, backend=StaffBackend()),
            Middleware(RBACMiddleware, rbac=rbac, role_attribute="access_level"),
        ],
    )
    with serving(app, rbac) as client:
        assert client.get("/endpoint", headers={"authorization": "Bearer staff"}).status_code == 200
        assert client.get("/endpoint").status_code == 401


def test_default_loader_user_without_a_role_is_403(rbac: RBAC, fake_claude: FakeClaude) -> None:
    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(AuthenticationMiddleware, backend=TokenBackend()),
            Middleware(RBACMiddleware, rbac=rbac, role_attribute="no_such_attribute"),
        ],
    )
    with serving(app, rbac) as client:
        response = client.get("/async", headers=bearer("ada"))
    assert response.status_code == 403
    assert response.json()["error"]["error_code"] == "role_insufficient"
    assert fake_claude.requests == []


def session_app(rbac: RBAC, **rbac_options: Any) -> Starlette:
    async def login(request: Request) -> Response:
        # The server decides the role; the client only names a demo account.
        name = request.path_params["name"]
        request.session.update({"uid": name, "level": "admin"})  # a stray role in the session is never read
        return PlainTextResponse("ok")

    return Starlette(
        routes=[*routes(), Route("/login/{name}", login, methods=["POST"])],
        middleware=[
            Middleware(SessionMiddleware, secret_key="test-secret"),
            Middleware(
                RBACMiddleware,
                rbac=rbac,
                session_key="uid",
                role_loader={"uma": "user", "paul": "power"}.get,
                **rbac_options,
            ),
        ],
    )


def test_default_loader_reads_the_session_key_and_asks_the_role_loader(rbac: RBAC, fake_claude: FakeClaude) -> None:
    with serving(session_app(rbac), rbac) as client:
        assert client.get("/async").status_code == 401
        client.post("/login/uma")
        assert client.get("/async").status_code == 200
        assert client.get("/endpoint").status_code == 403
        client.post("/login/paul")
        assert client.get("/endpoint").status_code == 200
    assert fake_claude.count() == 2


def test_custom_loader_gets_the_connection(rbac: RBAC) -> None:
    seen: list[Any] = []

    async def load(connection: Any) -> Principal | None:
        seen.append(connection)
        return Principal("uma", "user") if connection.headers.get("authorization") == "Bearer t-uma" else None

    app = Starlette(routes=routes(), middleware=[Middleware(RBACMiddleware, rbac=rbac, principal_loader=load)])
    with serving(app, rbac) as client:
        assert client.get("/async", headers=bearer("uma")).status_code == 200
        assert client.get("/async").status_code == 401
    assert all(type(c).__name__ == "HTTPConnection" for c in seen)


# -- startup and misuse ---------------------------------------------------------------------------------


def test_startup_fails_for_a_role_the_policy_lacks(rbac: RBAC) -> None:
    @requires_role("superuser")
    async def odd(request: Request) -> Response:
        return PlainTextResponse("never")

    app = Starlette(
        routes=[Mount("/deep", routes=[Route("/odd", odd)])], middleware=[Middleware(RBACMiddleware, rbac=rbac)]
    )
    with pytest.raises(PolicyError, match="superuser"), TestClient(app):
        pass


def test_without_lifespan_a_missing_role_fails_loudly_not_as_403(rbac: RBAC, fake_claude: FakeClaude) -> None:
    @requires_role("superuser")
    async def odd(request: Request) -> Response:
        return PlainTextResponse("never")

    app = Starlette(routes=[Route("/odd", odd)], middleware=[Middleware(RBACMiddleware, rbac=rbac)])
    client = TestClient(app, raise_server_exceptions=False)  # no `with`: no lifespan
    response = client.get("/odd")
    assert response.status_code == 500
    assert "superuser" not in response.text, "the policy problem is logged, not shown"


def test_bad_declarations_fail_at_decoration_time() -> None:
    with pytest.raises(PolicyError):
        requires_role("user", max_tokens=0)
    with pytest.raises(TypeError):
        requires_role("")

    def no_arguments() -> None: ...

    with pytest.raises(TypeError, match="takes no argument"):
        requires_role("user")(no_arguments)


def test_guard_without_middleware_is_a_clear_error() -> None:
    app = Starlette(routes=[Route("/async", async_chat)])
    with TestClient(app) as client, pytest.raises(RuntimeError, match="RBACMiddleware"):
        client.get("/async")


def test_get_claude_outside_a_guarded_endpoint_is_a_clear_error(rbac: RBAC) -> None:
    async def unguarded(request: Request) -> Response:
        get_claude(request)
        return PlainTextResponse("never")

    app = Starlette(routes=[Route("/", unguarded)], middleware=[Middleware(RBACMiddleware, rbac=rbac)])
    with TestClient(app) as client, pytest.raises(RuntimeError, match="requires_role"):
        client.get("/")


def test_an_app_exception_handler_overrides_the_default_body(rbac: RBAC) -> None:
    async def html_denial(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RBACError)
        return PlainTextResponse(f"Sorry: {exc.message}", status_code=exc.status_code)

    with serving(token_app(rbac, exception_handlers={RBACError: html_denial}), rbac) as client:
        response = client.get("/endpoint", headers=bearer("uma"))
    assert response.status_code == 403
    assert response.text == "Sorry: Role 'user' may not use this route."


def test_rbac_exception_handler_without_middleware(rbac: RBAC, fake_claude: FakeClaude) -> None:
    """An app that governs its own clients can still render RBACError with the handler."""

    async def direct(request: Request) -> Response:
        claude = rbac.async_client(Principal("uma", "user"))
        return JSONResponse(await ask(claude, OPUS))

    app = Starlette(routes=[Route("/", direct)], exception_handlers={RBACError: rbac_exception_handler})
    with serving(app, rbac) as client:
        response = client.get("/")
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["error_code"] == "model_not_allowed"
    assert fake_claude.requests == []


def test_shadow_mode_admits_and_records(make_rbac: Any, span_exporter: Any, fake_claude: FakeClaude) -> None:
    rbac = make_rbac(mode="shadow")
    with serving(token_app(rbac), rbac) as client:
        response = client.get("/endpoint", headers=bearer("uma"))
    assert response.status_code == 200
    guard = [a for a in authorize_spans(span_exporter) if "claude_rbac.required_role" in a]
    assert guard[0]["claude_rbac.decision"] == "deny"
    assert guard[0]["claude_rbac.enforced"] is False
