"""A Starlette route guarded by ``requires_role`` against the bare route and against slowapi's decorator.

Direct ASGI calls, no sockets. Our case runs the whole path: ``RBACMiddleware`` with its default
loader (reading ``scope["user"]`` as Starlette's ``AuthenticationMiddleware`` leaves it), the
route guard and, in the second of our rows, ``get_claude(request)``. slowapi's case is its
``@limiter.limit`` with memory storage. The target is at most 2x the bare route.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from benchmarks import harness
from claude_rbac import RBAC, Policy
from claude_rbac.integrations.starlette import RBACMiddleware, get_claude, requires_role

GROUP = "starlette"

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

_BASE_SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"bench.local"), (b"user-agent", b"bench")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: MutableMapping[str, Any]) -> None:
    return None


class Caller:
    """Calls one ASGI app ``n`` times per :meth:`run`, inside a loop of its own (created once)."""

    def __init__(self, app: ASGIApp, **scope: Any) -> None:
        self.app = app
        self.scope = {**_BASE_SCOPE, **scope}
        self.loop = asyncio.new_event_loop()

    def run(self, n: int) -> None:
        self.loop.run_until_complete(self._many(n))

    async def _many(self, n: int) -> None:
        app, scope = self.app, self.scope
        for _ in range(n):
            await app(dict(scope), _receive, _discard)

    def status(self, **scope: Any) -> tuple[int, bytes]:
        """One request, returning its status and body (for the checks)."""
        messages: list[MutableMapping[str, Any]] = []

        async def collect(message: MutableMapping[str, Any]) -> None:
            messages.append(message)

        self.loop.run_until_complete(self.app({**self.scope, **scope}, _receive, collect))
        start = next(m for m in messages if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        return int(start["status"]), body


class _User:
    """What ``AuthenticationMiddleware`` puts in ``scope["user"]``, with the app's role attribute."""

    is_authenticated = True

    def __init__(self, identity: str, role: str) -> None:
        self.identity = identity
        self.role = role


def _rbac() -> RBAC:
    # No call reaches this URL: the benchmark measures the guard and the client lookup, not Claude.
    return RBAC(Policy.default(), storage="memory://", api_key="sk-bench", base_url="http://127.0.0.1:9")


def bare_app() -> Starlette:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/", hello)])


def guarded_app(rbac: RBAC, *, with_client: bool = True) -> Starlette:
    @requires_role("user")
    async def hello(request: Request) -> PlainTextResponse:
        if with_client:
            get_claude(request)
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/", hello)], middleware=[Middleware(RBACMiddleware, rbac=rbac)])


def slowapi_app() -> tuple[Starlette, Any]:
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.util import get_remote_address

    limiter = Limiter(key_func=get_remote_address, storage_uri="memory://")

    @limiter.limit("100000000/minute")
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/", hello)])
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]
    return app, limiter


def cases() -> list[harness.Case]:
    bare = Caller(bare_app())
    rbac = _rbac()
    ours = Caller(guarded_app(rbac), user=_User("uma", "user"))
    guard_only = Caller(guarded_app(rbac, with_client=False), user=_User("uma", "user"))
    slowapi, limiter = slowapi_app()
    peer = Caller(slowapi)

    def check_bare() -> None:
        assert bare.status() == (200, b"hello")

    def check_ours() -> None:
        for caller in (ours, guard_only):
            assert caller.status() == (200, b"hello")
            assert caller.status(user=_User("vera", "viewer"))[0] == 403, "the guard must deny a viewer"
            assert caller.status(user=None)[0] == 401, "the guard must deny a signed-out request"

    def check_slowapi() -> None:
        assert peer.status() == (200, b"hello")
        assert limiter._storage.storage, "slowapi must have counted the hit"

    return [
        harness.Case(GROUP, "starlette bare route", bare.run, check_bare),
        harness.Case(GROUP, "starlette + claude_rbac (middleware, requires_role)", guard_only.run, check_ours),
        harness.Case(GROUP, "starlette + claude_rbac (middleware, requires_role, get_claude)", ours.run),
        harness.Case(GROUP, "starlette + slowapi @limiter.limit (memory)", peer.run, check_slowapi),
    ]


if __name__ == "__main__":
    print(harness.table(harness.measure(cases())))
