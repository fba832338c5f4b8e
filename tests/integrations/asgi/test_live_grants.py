"""A granted client stops serving a user who was removed or demoted, on an open websocket and in a
background task queued before: a real uvicorn, a real websocket client.

New requests of a removed user are refused at their guard; but a websocket opened earlier kept calling
opus, and a background task queued earlier still did. A client from ``get_claude()`` (or the FastAPI
dependency) now asks the principal loader again before each call it makes on a websocket, or after the
HTTP response was sent: a principal that is no longer the one admitted is refused.

No ``from __future__ import annotations``: FastAPI resolves the endpoint signatures at decoration time.
"""

import asyncio
import threading
from collections.abc import Iterator
from typing import Annotated, Any

import anyio
import httpx
import pytest
from anthropic import AsyncAnthropic
from fastapi import BackgroundTasks, Depends, FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from claude_rbac import RBAC, RBACError
from claude_rbac.integrations import fastapi as fastapi_rbac
from claude_rbac.integrations import starlette as starlette_rbac
from claude_rbac.testing import FakeClaude

from .conftest import closing_lifespan, uvicorn_server, wait_for

OPUS = "claude-opus-4-7"
SECRET = "live-grants-secret"
DIRECTORY: dict[str, str] = {}
"""The app's user store on the server: user id -> role."""
GATE = threading.Event()
"""Holds a queued background task until the test has changed the directory."""
OUTCOMES: list[str] = []


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    DIRECTORY.clear()
    DIRECTORY.update({"paul": "power", "uma": "user"})
    GATE.clear()
    OUTCOMES.clear()
    yield
    GATE.set()


async def ask_opus(claude: Any) -> str:
    message = await claude.messages.create(model=OPUS, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    return str(message.model)


async def chat_until_closed(websocket: Any, claude: Any) -> None:
    """One client for the whole connection, as an app writes it: asked for once, used per message."""
    while True:
        await websocket.receive_text()
        await websocket.send_text(await ask_opus(claude))


async def later(claude: Any) -> None:
    """A background task: it runs after the response was sent, here once the test opens the gate."""
    await anyio.to_thread.run_sync(GATE.wait, 10)
    try:
        OUTCOMES.append(await ask_opus(claude))
    except RBACError as error:
        OUTCOMES.append(error.reason)


def later_in_a_thread(claude: Any) -> None:
    """A sync background task with a sync client: Starlette runs it in a worker thread."""
    GATE.wait(10)
    try:
        message = claude.messages.create(model=OPUS, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        OUTCOMES.append(message.model)
    except RBACError as error:
        OUTCOMES.append(error.reason)


async def login(request: Request) -> Response:
    request.session["user_id"] = request.path_params["name"]
    return PlainTextResponse("ok")


@starlette_rbac.requires_role("power")
async def starlette_ws(websocket: Any) -> None:
    await websocket.accept()
    await chat_until_closed(websocket, starlette_rbac.get_claude(websocket))


@starlette_rbac.requires_role("power")
async def starlette_later(request: Request) -> Response:
    return JSONResponse({"queued": True}, background=BackgroundTask(later, starlette_rbac.get_claude(request)))


@starlette_rbac.requires_role("power")
def starlette_later_sync(request: Request) -> Response:
    claude = starlette_rbac.get_claude(request)  # a sync endpoint: an anthropic.Anthropic
    return JSONResponse({"queued": True}, background=BackgroundTask(later_in_a_thread, claude))


def starlette_app(rbac: RBAC) -> Starlette:
    return Starlette(
        routes=[
            Route("/login/{name}", login, methods=["POST"]),
            Route("/later", starlette_later, methods=["POST"]),
            Route("/later-sync", starlette_later_sync, methods=["POST"]),
            WebSocketRoute("/ws", starlette_ws),
            Route("/api/me", PlainTextResponse),
        ],
        middleware=[
            Middleware(SessionMiddleware, secret_key=SECRET),
            Middleware(starlette_rbac.RBACMiddleware, rbac=rbac, role_loader=DIRECTORY.get),
        ],
        lifespan=closing_lifespan(rbac),
    )


PowerClaude = Annotated[AsyncAnthropic, Depends(fastapi_rbac.requires_role("power"))]


def fastapi_app(rbac: RBAC) -> FastAPI:
    app = FastAPI(lifespan=closing_lifespan(rbac))
    app.add_middleware(fastapi_rbac.RBACMiddleware, rbac=rbac, role_loader=DIRECTORY.get)
    app.add_middleware(SessionMiddleware, secret_key=SECRET)
    app.add_api_route("/login/{name}", login, methods=["POST"])

    @app.post("/later")
    async def queue(tasks: BackgroundTasks, claude: PowerClaude) -> Any:
        tasks.add_task(later, claude)
        return {"queued": True}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, claude: PowerClaude) -> None:
        await websocket.accept()
        await chat_until_closed(websocket, claude)

    return app


def build(framework: str, rbac: RBAC) -> Any:
    return starlette_app(rbac) if framework == "starlette" else fastapi_app(rbac)


def signed_in(url: str, name: str) -> str:
    with httpx.Client(base_url=url, timeout=5) as http:
        assert http.post(f"/login/{name}").status_code == 200
        return f"session={http.cookies['session']}"


FRAMEWORKS = ["starlette", "fastapi"]
CHANGES = {
    "removed": lambda: DIRECTORY.pop("paul"),
    "demoted": lambda: DIRECTORY.update(paul="user"),
}


@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_an_open_websocket_stops_serving_a_removed_user(
    make_rbac: Any, fake_claude: FakeClaude, framework: str, change: str
) -> None:
    with uvicorn_server(build(framework, make_rbac()), ws="websockets-sansio") as url:
        cookie = signed_in(url, "paul")

        async def talk() -> tuple[str, int | None]:
            async with connect(
                url.replace("http://", "ws://") + "/ws", additional_headers={"cookie": cookie}, open_timeout=5
            ) as ws:
                await ws.send("first")
                first = str(await asyncio.wait_for(ws.recv(), 5))
                CHANGES[change]()
                await ws.send("second")
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                return first, ws.close_code

        first, code = asyncio.run(talk())
    assert first == OPUS
    assert code == 1008  # policy violation: the websocket closed instead of a second opus call
    assert fake_claude.count() == 1


@pytest.mark.parametrize(("change", "reason"), [("removed", "role_insufficient"), ("demoted", "role_insufficient")])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_queued_background_task_stops_serving_a_removed_user(
    make_rbac: Any, fake_claude: FakeClaude, framework: str, change: str, reason: str
) -> None:
    with uvicorn_server(build(framework, make_rbac())) as url, httpx.Client(base_url=url, timeout=5) as http:
        http.headers["cookie"] = signed_in(url, "paul")
        assert http.post("/later").json() == {"queued": True}
        CHANGES[change]()
        GATE.set()
        wait_for(lambda: OUTCOMES, message="the background task")
    assert [reason] == OUTCOMES
    assert fake_claude.count() == 0


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_an_unchanged_user_keeps_the_grant(make_rbac: Any, fake_claude: FakeClaude, framework: str) -> None:
    with uvicorn_server(build(framework, make_rbac())) as url, httpx.Client(base_url=url, timeout=5) as http:
        http.headers["cookie"] = signed_in(url, "paul")
        assert http.post("/later").json() == {"queued": True}
        GATE.set()
        wait_for(lambda: OUTCOMES, message="the background task")
    assert OUTCOMES == [OPUS]
    assert fake_claude.count() == 1


@pytest.mark.parametrize("change", [None, "removed"])
def test_a_sync_background_task_asks_from_its_worker_thread(
    make_rbac: Any, fake_claude: FakeClaude, change: str | None
) -> None:
    with uvicorn_server(starlette_app(make_rbac())) as url, httpx.Client(base_url=url, timeout=5) as http:
        http.headers["cookie"] = signed_in(url, "paul")
        assert http.post("/later-sync").json() == {"queued": True}
        if change is not None:
            CHANGES[change]()
        GATE.set()
        wait_for(lambda: OUTCOMES, message="the background task")
    assert ([OPUS] if change is None else ["role_insufficient"]) == OUTCOMES
    assert fake_claude.count() == (1 if change is None else 0)
