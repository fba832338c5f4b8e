"""A FastAPI route guarded by ``Depends(requires_role(...))`` against the bare route and slowapi's decorator.

Direct ASGI calls, no sockets. Our case runs ``RBACMiddleware`` with its default loader (reading
``scope["user"]`` as Starlette's ``AuthenticationMiddleware`` leaves it) and the dependency, which
admits the principal and hands the endpoint its governed ``AsyncAnthropic``. slowapi's case is its
``@limiter.limit`` with memory storage. The target is at most 1.2x the bare route; the "empty Depends"
row shows what FastAPI itself charges for resolving any dependency, a floor no dependency can go under.
"""

from __future__ import annotations

from typing import Annotated, Any

from anthropic import AsyncAnthropic
from fastapi import Depends, FastAPI, Request, Response

from benchmarks import harness
from benchmarks.bench_starlette import Caller, _rbac, _User
from claude_rbac import RBAC
from claude_rbac.integrations.fastapi import RBACMiddleware, requires_role

GROUP = "fastapi"
UserClaude = Annotated[AsyncAnthropic, Depends(requires_role("user"))]


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    return app


def guarded_app(rbac: RBAC) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RBACMiddleware, rbac=rbac)

    @app.get("/")
    async def hello(claude: UserClaude) -> dict[str, str]:
        assert isinstance(claude, AsyncAnthropic)
        return {"hello": "world"}

    return app


async def _nothing() -> None:
    return None


def empty_dependency_app() -> FastAPI:
    """The floor under any dependency-based guard: FastAPI resolving one empty ``Depends``."""
    app = FastAPI()

    @app.get("/")
    async def hello(nothing: Annotated[None, Depends(_nothing)]) -> dict[str, str]:
        return {"hello": "world"}

    return app


def slowapi_app() -> tuple[FastAPI, Any]:
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.util import get_remote_address

    limiter = Limiter(key_func=get_remote_address, storage_uri="memory://")
    app = FastAPI()
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

    @app.get("/")
    @limiter.limit("100000000/minute")
    async def hello(request: Request, response: Response) -> dict[str, str]:
        return {"hello": "world"}

    return app, limiter


def cases() -> list[harness.Case]:
    bare = Caller(bare_app())
    floor = Caller(empty_dependency_app())
    ours = Caller(guarded_app(_rbac()), user=_User("uma", "user"))
    slowapi, limiter = slowapi_app()
    peer = Caller(slowapi)
    ok = (200, b'{"hello":"world"}')

    def check_bare() -> None:
        assert bare.status() == ok

    def check_floor() -> None:
        assert floor.status() == ok

    def check_ours() -> None:
        assert ours.status() == ok
        assert ours.status(user=_User("vera", "viewer"))[0] == 403, "the guard must deny a viewer"
        assert ours.status(user=None)[0] == 401, "the guard must deny a signed-out request"

    def check_slowapi() -> None:
        assert peer.status() == ok
        assert limiter._storage.storage, "slowapi must have counted the hit"

    return [
        harness.Case(GROUP, "fastapi bare route", bare.run, check_bare),
        harness.Case(GROUP, "fastapi + one empty Depends() (the floor for any dependency)", floor.run, check_floor),
        harness.Case(GROUP, "fastapi + claude_rbac (middleware, Depends(requires_role))", ours.run, check_ours),
        harness.Case(GROUP, "fastapi + slowapi @limiter.limit (memory)", peer.run, check_slowapi),
    ]


if __name__ == "__main__":
    print(harness.table(harness.measure(cases())))
