"""Once under a real ASGI server: uvicorn on 127.0.0.1, a handful of requests, stopped within seconds."""

from __future__ import annotations

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
