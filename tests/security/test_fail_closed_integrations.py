"""Fail closed, in every integration: a broken principal loader, storage or revocation source denies.

One part breaks at a time, behind each integration serving the shared JSON API: the answer is a 401, 403
or 503 with the Anthropic error body, within bounded time, and FakeClaude receives nothing. (The core
is covered by test_fail_closed.py; the key source and the policy reload live in the core alone.)

Bounds: a raising loader or revocation source answers at once; a hanging or stopped Redis answers within
the storage's socket timeout (0.25 s). A *hanging* async principal loader is cancelled after the
middleware's ``loader_timeout`` (Django: ``PRINCIPAL_LOADER_TIMEOUT``; 5 s by default, 0.1 s here) and
the request counts as signed out. A sync loader cannot be interrupted in its own thread: keep those to
lookups with timeouts of their own.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from claude_rbac.testing import FakeClaude
from tests.support.redis import RedisServer
from tests.support.tcp_proxy import TcpProxy

from ._support import (
    INTEGRATIONS,
    OPUS,
    Target,
    asgi_app,
    django_settings,
    error_of,
    fastapi_app,
    make_rbac,
    serve,
    starlette_app,
)

BOUND = 1.5
"""Seconds any refusal may take here (the Redis socket timeout is 0.25 s)."""
HANG_WINDOW = 0.3
"""How long a hanging loader is watched before the test releases it."""
LOADER_TIMEOUT = 0.1
"""The loader timeout these tests configure (the default is 5 s)."""
CHAT = ("POST", "/api/chat", {"prompt": "Hello"})
LONG = ("POST", "/api/long", {"prompt": "Hello", "model": OPUS})
ADMIN = ("GET", "/admin", None)
ASYNC_INTEGRATIONS = ("asgi", "starlette", "fastapi", "django")


def timed(target: Target, request: tuple[str, str, Any], cookies: dict[str, str] | None = None) -> httpx.Response:
    method, path, body = request
    started = time.monotonic()
    response = target.send(method, path, cookies=cookies, json=body)
    assert time.monotonic() - started < BOUND, f"{path} took {time.monotonic() - started:.2f} s"
    return response


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert error_of(response)["error_code"] == code


# -- the principal loader -------------------------------------------------------------------------------


def raising_loader(*request: object) -> Any:
    raise RuntimeError("the user directory is down")


async def async_raising_loader(*request: object) -> Any:
    raise RuntimeError("the user directory is down")


def junk_loader(*request: object) -> Any:
    return {"id": "ada", "role": "admin"}  # not a Principal: as good as nobody


FAILING_LOADERS = [
    *(pytest.param(name, raising_loader, id=f"{name}-raises") for name in INTEGRATIONS),
    *(pytest.param(name, junk_loader, id=f"{name}-returns-junk") for name in INTEGRATIONS),
    *(pytest.param(name, async_raising_loader, id=f"{name}-async-raises") for name in ("asgi", "starlette", "fastapi")),
]
"""Django's async resolver runs under its ASGI handler: see the next test."""


@pytest.mark.parametrize(("name", "loader"), FAILING_LOADERS)
def test_a_failing_principal_loader_denies(
    name: str, loader: Callable[..., Any], fake_claude: FakeClaude, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="claude_rbac"), serve(name, fake_claude, loader=loader) as target:
        for request in (CHAT, LONG, ADMIN):
            refused(timed(target, request), 401, "unauthenticated")
    assert fake_claude.requests == []
    assert any("principal loader" in record.getMessage() for record in caplog.records), "the failure was not logged"


def test_a_failing_async_resolver_denies_in_django(fake_claude: FakeClaude, caplog: pytest.LogCaptureFixture) -> None:
    from django.core.handlers.asgi import ASGIHandler

    async def chat(app: Any) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            return await asyncio.wait_for(http.post("/api/chat", json=CHAT[2]), BOUND)

    with (
        caplog.at_level(logging.ERROR, logger="claude_rbac"),
        django_settings(fake_claude, resolver=async_raising_loader),
    ):
        response = asyncio.run(chat(ASGIHandler()))
    refused(response, 401, "unauthenticated")
    assert fake_claude.requests == []
    assert any("principal loader" in record.getMessage() for record in caplog.records)


class NotBounded(Exception):
    """The request was still waiting on the loader when the window closed."""


def _hanging_loader(release: threading.Event) -> Callable[..., Any]:
    async def hanging(*request: object) -> Any:
        await asyncio.to_thread(release.wait, 10)  # a directory that does not answer, until the test lets go
        raise RuntimeError("the user directory timed out")

    return hanging


@pytest.mark.parametrize("name", ASYNC_INTEGRATIONS)
def test_a_hanging_async_loader_is_answered_in_bounded_time(name: str, fake_claude: FakeClaude) -> None:
    release = threading.Event()
    loader = _hanging_loader(release)

    async def watch(app: Any) -> tuple[bool, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            request = asyncio.ensure_future(http.post("/api/chat", json=CHAT[2]))
            try:
                done, _ = await asyncio.wait({request}, timeout=HANG_WINDOW)
            finally:
                release.set()
            return bool(done), await asyncio.wait_for(request, BOUND)

    if name == "django":
        from django.core.handlers.asgi import ASGIHandler

        with django_settings(fake_claude, resolver=loader, resolver_timeout=LOADER_TIMEOUT):
            answered_in_time, response = asyncio.run(watch(ASGIHandler()))
    else:
        rbac = make_rbac(fake_claude)
        build = {"asgi": asgi_app, "starlette": starlette_app, "fastapi": fastapi_app}[name]

        async def run() -> tuple[bool, httpx.Response]:
            try:
                return await watch(build(rbac, loader, LOADER_TIMEOUT))
            finally:
                await rbac.aclose()

        answered_in_time, response = asyncio.run(run())
    # Whatever the timing, the loader's failure denies and nothing reached Claude.
    refused(response, 401, "unauthenticated")
    assert fake_claude.requests == []
    if not answered_in_time:
        raise NotBounded(f"{name}: no answer within {HANG_WINDOW} s while the principal loader hung")


# -- the limits storage ---------------------------------------------------------------------------------


@pytest.fixture
def redis_behind_proxy() -> Iterator[tuple[RedisServer, TcpProxy]]:
    """A Redis of this test's own behind a proxy that can hang: stop the one, freeze the other."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with RedisServer() as server, TcpProxy("127.0.0.1", server.port) as proxy:
        yield server, proxy


@pytest.mark.redis
@pytest.mark.parametrize("name", INTEGRATIONS)
def test_a_hanging_or_stopped_storage_answers_503(
    name: str, fake_claude: FakeClaude, redis_behind_proxy: tuple[RedisServer, TcpProxy], key_prefix: str
) -> None:
    server, proxy = redis_behind_proxy
    with serve(name, fake_claude, storage=proxy.url(), key_prefix=key_prefix) as target:
        uma, vera = target.login("uma")[0], target.login("vera")[0]
        assert timed(target, CHAT, uma).status_code == 200  # the storage works: one call reaches Claude

        proxy.hang()
        refused(timed(target, CHAT, uma), 503, "backend_unavailable")
        proxy.hang(False)
        server.stop()
        refused(timed(target, CHAT, uma), 503, "backend_unavailable")
        # Denials that need no counter stay what they are.
        refused(timed(target, CHAT, vera), 403, "role_insufficient")
        refused(timed(target, CHAT), 401, "unauthenticated")
        refused(timed(target, ADMIN, uma), 403, "role_insufficient")
    assert fake_claude.count() == 1, "a call reached Claude while the storage was down"


# -- the key revocation source --------------------------------------------------------------------------


def broken_revocation_list() -> list[str]:
    raise TimeoutError("the revocation list is unreachable")


@pytest.mark.parametrize("name", INTEGRATIONS)
def test_a_raising_revocation_source_answers_503(name: str, fake_claude: FakeClaude) -> None:
    with serve(name, fake_claude, revoked=broken_revocation_list) as target:
        uma = target.login("uma")[0]
        refused(timed(target, CHAT, uma), 503, "backend_unavailable")
        refused(timed(target, LONG, target.login("paul")[0]), 503, "backend_unavailable")
        refused(timed(target, CHAT), 401, "unauthenticated")
    assert fake_claude.requests == []
