"""A route that calls Claude, whole: the guard, the SDK call and its rate limit, on memory and on Redis.

The route guards alone (bench_flask, bench_fastapi...) touch no storage: claude_rbac counts a call
when the governed client makes it. So here every route makes one ``messages.create`` through the
real anthropic SDK, answered in-process by an ``httpx2.MockTransport`` (no sockets, the same canned
message for every case): a bare route with a plain client, the peer limiting the route, and
claude_rbac's guard with the governed client, each on memory and on the Redis at 127.0.0.1:6379.

Run: ``.venv/bin/python -m benchmarks.bench_calls``
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

import anthropic
from anthropic import AsyncAnthropic
from fastapi import Depends, FastAPI, Request, Response
from flask import Flask

from benchmarks import harness
from benchmarks.bench_flask import _app, _call, _environ, _runner
from benchmarks.bench_starlette import Caller, _User
from benchmarks.wire_apps import ARGS, _options
from claude_rbac import RBAC, Principal
from claude_rbac.integrations.fastapi import RBACMiddleware, requires_role
from claude_rbac.integrations.flask import ClaudeRBAC, current_claude
from claude_rbac.integrations.flask import requires_role as flask_requires_role

REDIS = "redis://127.0.0.1:6379/0"
KEY = "sk-ant-api03-benchmark-key-000000000000000000000000000000-BNCH"
POLICY = {"roles": {"user": {"models": ["claude-haiku-*"], "max_tokens": 512, "rpm": 10**6}}}


def _rbac(storage: str, asynchronous: bool) -> RBAC:
    return RBAC(
        POLICY,
        storage=storage,
        key_prefix=f"bench-{uuid.uuid4().hex[:8]}",
        api_key=KEY,
        base_url="http://claude.invalid",
        client_options=_options(asynchronous),
    )


# -- Flask --------------------------------------------------------------------------------------------


def _plain_flask(limiter_storage: str | None) -> Flask:
    app = _app()
    client = anthropic.Anthropic(api_key=KEY, base_url="http://claude.invalid", **_options(False))

    def chat() -> str:
        client.messages.create(**ARGS)
        return "ok"

    if limiter_storage is None:
        app.add_url_rule("/chat", "chat", chat)
    else:
        from flask_limiter import Limiter
        from flask_limiter.util import get_remote_address

        limiter = Limiter(
            get_remote_address, app=app, storage_uri=limiter_storage, key_prefix=f"bench-{uuid.uuid4().hex[:8]}"
        )
        app.add_url_rule("/chat", "chat", limiter.limit("1000000/minute")(chat))
    return app


def _emptied(rbac: RBAC, run: Callable[[int], None]) -> Callable[[int], None]:
    """Empty a memory storage before each timed run.

    A moving window keeps an entry per request for a minute, and limits' MemoryStorage walks every entry
    from a timer thread every 10 ms: a benchmark that keeps 2,000 calls/s up for minutes would measure that
    walk over 100,000+ entries, not a call. Emptied, the window holds what a few seconds leave (a busy
    process's share of Claude calls). Redis keeps its windows: its scripts don't walk them.
    """

    def emptied(n: int) -> None:
        if rbac.quota.is_memory:
            rbac.quota.storage.reset()
        run(n)

    return emptied


def _governed_flask(storage: str) -> Flask:
    app = _app()
    ClaudeRBAC(app, rbac=_rbac(storage, False), principal_loader=lambda: Principal("uma", "user"))

    def chat() -> str:
        current_claude().messages.create(**ARGS)
        return "ok"

    app.add_url_rule("/chat", "chat", flask_requires_role("user")(chat))
    return app


def _ok(app: Flask) -> harness.Callable[[], None]:
    def check() -> None:
        status, body, _ = _call(app, _environ(app))
        assert (status, body) == ("200 OK", b"ok"), (status, body)

    return check


def flask_cases() -> list[harness.Case]:
    apps = [
        ("flask bare route + plain SDK call", _plain_flask(None)),
        ("Flask-Limiter (memory) + plain SDK call", _plain_flask("memory://")),
        ("Flask-Limiter (Redis) + plain SDK call", _plain_flask(REDIS)),
        ("claude_rbac guard + governed call (memory)", _governed_flask("memory://")),
        ("claude_rbac guard + governed call (Redis)", _governed_flask(REDIS)),
    ]
    return [harness.Case("flask-call", name, _run(app), _ok(app)) for name, app in apps]


def _run(app: Flask) -> Callable[[int], None]:
    state = app.extensions.get("claude_rbac.state")
    return _emptied(state.rbac, _runner(app)) if state is not None else _runner(app)


# -- FastAPI ------------------------------------------------------------------------------------------


def _plain_fastapi(limiter_storage: str | None) -> FastAPI:
    app = FastAPI()
    client = AsyncAnthropic(api_key=KEY, base_url="http://claude.invalid", **_options(True))
    if limiter_storage is None:

        @app.get("/")
        async def chat() -> dict[str, str]:
            await client.messages.create(**ARGS)
            return {"hello": "world"}

        return app
    from slowapi import Limiter
    from slowapi.util import get_remote_address

    limiter = Limiter(
        key_func=get_remote_address, storage_uri=limiter_storage, key_prefix=f"bench-{uuid.uuid4().hex[:8]}"
    )
    app.state.limiter = limiter

    @app.get("/")
    @limiter.limit("100000000/minute")
    async def limited(request: Request, response: Response) -> dict[str, str]:
        await client.messages.create(**ARGS)
        return {"hello": "world"}

    return app


UserClaude = Annotated[AsyncAnthropic, Depends(requires_role("user"))]


def _governed_fastapi(storage: str) -> FastAPI:
    app = FastAPI()
    rbac = _rbac(storage, True)
    app.add_middleware(RBACMiddleware, rbac=rbac, principal_loader=lambda connection: Principal("uma", "user"))
    app.claude_rbac = rbac  # type: ignore[attr-defined]  # for the benchmark's runner

    @app.get("/")
    async def chat(claude: UserClaude) -> dict[str, str]:
        await claude.messages.create(**ARGS)
        return {"hello": "world"}

    return app


def fastapi_cases() -> list[harness.Case]:
    user = _User("uma", "user")
    callers = [
        ("fastapi bare route + plain SDK call", Caller(_plain_fastapi(None))),
        ("slowapi (memory) + plain SDK call", Caller(_plain_fastapi("memory://"))),
        ("slowapi (Redis, sync client on the loop) + plain SDK call", Caller(_plain_fastapi(REDIS))),
        ("claude_rbac guard + governed call (memory)", Caller(_governed_fastapi("memory://"), user=user)),
        ("claude_rbac guard + governed call (Redis, limits.aio)", Caller(_governed_fastapi(REDIS), user=user)),
    ]

    def ok(caller: Caller) -> harness.Callable[[], None]:
        return lambda: _expect_ok(caller)

    def run(caller: Caller) -> Callable[[int], None]:
        rbac = getattr(caller.app, "claude_rbac", None)
        return _emptied(rbac, caller.run) if rbac is not None else caller.run

    return [harness.Case("fastapi-call", name, run(caller), ok(caller)) for name, caller in callers]


def _expect_ok(caller: Caller) -> None:
    assert caller.status() == (200, b'{"hello":"world"}')


def main() -> str:
    return "\n\n".join(
        [
            "### Flask route that calls Claude (µs per request)",
            harness.table(harness.measure(flask_cases())),
            "### FastAPI route that calls Claude (µs per request)",
            harness.table(harness.measure(fastapi_cases())),
        ]
    )


if __name__ == "__main__":
    print(main())
