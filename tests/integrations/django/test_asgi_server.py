"""Once under a real ASGI server: uvicorn on 127.0.0.1, a handful of requests, stopped within seconds."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from claude_rbac.testing import FakeClaude

from .project import HAIKU, SONNET, USERS
from .support import login


@pytest.fixture
def asgi_server(client: Any) -> Iterator[str]:
    from django.core.handlers.asgi import ASGIHandler

    config = uvicorn.Config(ASGIHandler(), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-django", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    try:
        yield url
    finally:
        try:
            httpx.get(f"{url}/test/close-pools", timeout=5)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    assert not thread.is_alive()


def client_for(url: str, user: Any = None, **cookies: str) -> httpx.Client:
    """An HTTP client signed in as ``user`` (a real session cookie), or anonymous with the given cookies."""
    from django.conf import settings

    if user is not None:
        cookies[settings.SESSION_COOKIE_NAME] = login(user).cookies[settings.SESSION_COOKIE_NAME].value
    return httpx.Client(base_url=url, timeout=10, cookies=cookies)


def test_guarded_views_under_uvicorn(asgi_server: str, make_user: Any, fake_claude: FakeClaude) -> None:
    user = make_user(groups=[USERS])
    power = make_user(role="power")
    with client_for(asgi_server, role="admin") as anonymous_client:
        anonymous = anonymous_client.post("/api/achat", json={"prompt": "hi"})
        forged = anonymous_client.get("/admin", headers={"X-Role": "admin"}, params={"role": "admin"})
    with client_for(asgi_server, user) as user_client:
        async_chat = user_client.post("/api/achat", json={"prompt": "async"})
        sync_chat = user_client.post("/api/chat", json={"prompt": "sync"})
        denied = user_client.post("/api/areport", json={"prompt": "x"})
    with client_for(asgi_server, power) as power_client:
        report = power_client.post("/api/areport", json={"model": SONNET})
    assert (anonymous.status_code, anonymous.json()["error"]["error_code"]) == (401, "unauthenticated")
    assert forged.status_code == 401
    assert async_chat.status_code == 200
    assert async_chat.json()["role"] == "user"
    assert sync_chat.status_code == 200
    assert (denied.status_code, denied.json()["error"]["type"]) == (403, "permission_error")
    assert report.status_code == 200
    assert report.json()["role"] == "power"
    assert [(call.json["model"], call.json["messages"][0]["content"]) for call in fake_claude.calls()] == [
        (HAIKU, "async"),
        (HAIKU, "sync"),
        (SONNET, "Hello"),
    ]


def test_class_views_guard_under_uvicorn(asgi_server: str, make_user: Any) -> None:
    """The mixin after View, and method_decorator on an async view's dispatch: 401/200, never 500 or an open door."""
    admin = make_user(role="admin")
    urls = ["/cbv/view-first", "/cbv/async-view-first", "/cbv/async-dispatch"]
    with client_for(asgi_server) as anonymous:
        refused = [anonymous.get(url) for url in urls]
    with client_for(asgi_server, admin) as admin_client:
        allowed = [admin_client.get(url) for url in urls]
    assert [(r.status_code, r.json()["error"]["error_code"]) for r in refused] == [(401, "unauthenticated")] * 3
    assert [(r.status_code, r.text) for r in allowed] == [(200, f"admin data for {admin.pk}")] * 3


HANG_SECONDS = 30.0
LOADED: list[str] = []


async def hanging_loader(request: Any) -> Any:
    """An ``async def`` loader whose identity service hangs (far longer than any test runs)."""
    LOADED.append(request.path)
    await asyncio.sleep(HANG_SECONDS)
    return None


def test_the_loader_timeout_bounds_the_request_under_uvicorn(asgi_server: str, claude_settings: Any) -> None:
    claude_settings(PRINCIPAL_LOADER=f"{__name__}.hanging_loader", PRINCIPAL_LOADER_TIMEOUT=0.5)
    LOADED.clear()
    with httpx.Client(base_url=asgi_server, timeout=8) as http:  # far below HANG_SECONDS: no answer fails the test
        unguarded = [http.get("/apage"), http.get("/page"), http.get("/no/such/page")]
        guarded = [http.get("/admin"), http.post("/api/achat", json={"prompt": "hi"})]
    assert [response.status_code for response in unguarded] == [200, 200, 404]
    assert [(r.status_code, r.json()["error"]["error_code"]) for r in guarded] == [(401, "unauthenticated")] * 2
    assert LOADED == ["/admin", "/api/achat"]  # the unguarded pages and the 404 never called it
