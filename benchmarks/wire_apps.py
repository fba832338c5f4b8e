"""The apps the over-the-wire benchmark serves, one variant per process, chosen by ``BENCH_VARIANT``.

``flask_app`` runs under gunicorn (sync worker), ``starlette_app`` under uvicorn. Every variant has
``/login`` (stores the username in the signed session) and ``/chat``:

* ``bare``: returns "ok";
* ``peer-memory`` / ``peer-redis``: Flask-Limiter or slowapi limiting ``/chat``;
* ``guard``: claude_rbac's middleware and ``requires_role("user")``, no Claude call;
* ``bare-call``: a plain anthropic client call, answered in-process (``httpx2.MockTransport``);
* ``guard-call-memory`` / ``guard-call-redis``: the guard and a governed call, limits on memory or Redis;
* ``plain-call`` / ``plain-call-again``: two identical plain-call routes (Flask), the A/A control of the
  governed-call matrix;
* ``plain-call-redis``: the plain call after one Redis round trip (a redis-py ``PING``): the floor under any
  limiter whose counters live in Redis, on the machine the matrix runs on;
* ``guarded-plain-call``: claude_rbac's middleware and ``requires_role("user")`` around the plain call: what
  the route guard costs by itself, so a governed call's row can be split into the guard and the call;
* ``governed``: the guard and a governed call, shaped by ``BENCH_STORAGE`` (``memory``/``redis``),
  ``BENCH_LIMITS`` (``rpm``, ``tokens``: RPM+TPM+budget, ``spend``: RPM+TPM+spend) and ``BENCH_USERS``
  (how many rotating users the calls are counted for).

Flask variants also answer ``GET /_cpu`` (the worker's CPU time, all threads, the requests it served and
the context switches of its other threads, for per-request deltas) and ``POST /_prefill`` (give every one
of the ``BENCH_USERS`` users a live window, so that all of them are active users of the storage).
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

import anthropic
import httpx2

VARIANT = os.environ.get("BENCH_VARIANT", "bare")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
SECRET = "wire-bench-secret"
KEY = "sk-ant-api03-benchmark-key-000000000000000000000000000000-BNCH"
USERS = {"uma": "user"}
ROLE: dict[str, Any] = {"models": ["claude-haiku-*"], "max_tokens": 512, "rpm": 10_000}
LIMITS: dict[str, dict[str, Any]] = {
    "rpm": {},
    "tokens": {"tpm": 10**9, "budget": {"day": 10**12}},
    "spend": {"tpm": 10**9, "spend": {"day": 2.00}},
}
"""What each ``BENCH_LIMITS`` adds to the role: nothing is ever refused (a user makes about one call a second)."""
LIMITED = os.environ.get("BENCH_LIMITS", "rpm")
POLICY = {"roles": {"user": {**ROLE, **LIMITS[LIMITED]}}}
ROTATE = int(os.environ.get("BENCH_USERS", "1000"))
"""The signed-in user is ``uma``; guarded calls are counted as one of this many users (a realistic rpm each:
a moving window keeps an entry per request, and one user allowed millions would measure a long list)."""
ARGS: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}
MESSAGE = json.dumps(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "Hello."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
).encode()


def _answer(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, content=MESSAGE, headers={"content-type": "application/json"})


def _options(asynchronous: bool) -> dict[str, Any]:
    transport = httpx2.MockTransport(_answer)
    client = httpx2.AsyncClient(transport=transport) if asynchronous else httpx2.Client(transport=transport)
    return {"http_client": client, "max_retries": 0}


def _rbac(storage: str, asynchronous: bool) -> Any:
    from claude_rbac import RBAC

    return RBAC(
        POLICY,
        storage=storage,
        key_prefix=os.environ.get("BENCH_KEY_PREFIX") or f"wire-{uuid.uuid4().hex[:8]}",
        api_key=KEY,
        base_url="http://claude.invalid",
        client_options=_options(asynchronous),
        warn_multiprocess=False,
    )


def prefill(rbac: Any, users: int) -> int:
    """Give each of ``users`` users (``uma-0``...) a live window, as a call counts it: then all of them are
    active users of the storage, as they are of one serving that many people."""
    quota, role = rbac.quota, rbac.policy.role("user")
    for n in range(users):
        buckets = quota.buckets(
            role="user",
            principal_id=f"uma-{n}",
            rpm=role.rpm,
            scope_name="",
            tpm=role.tpm,
            budget_day=role.budget.day,
            budget_month=role.budget.month,
            tokens=1,
        )
        quota.acquire(buckets)
    return users


class Counted:
    """The WSGI app, counting the requests the worker served (read by ``GET /_cpu``)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.served = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.served += 1
        return self.app(environ, start_response)


def _other_threads_switches() -> int:
    """Context switches of every thread but the main one: a thread woken per request shows here."""
    main, total = os.getpid(), 0  # the main thread's id is the process's (a forked worker's too)
    for tid in os.listdir("/proc/self/task"):
        if int(tid) == main:
            continue
        try:
            with open(f"/proc/self/task/{tid}/status") as status:
                for line in status:  # voluntary_ctxt_switches and nonvoluntary_ctxt_switches
                    if "ctxt_switches" in line:
                        total += int(line.split()[-1])
        except FileNotFoundError:  # the thread ended
            continue
    return total


def create_flask() -> Any:
    from flask import Flask, request, session

    from claude_rbac import Principal
    from claude_rbac.integrations.flask import ClaudeRBAC, current_claude, requires_role

    app = Flask(__name__)
    app.secret_key = SECRET

    @app.post("/login")
    def login() -> str:
        session["username"] = request.form["username"]
        return "ok"

    def ok() -> str:
        return "ok"

    def plain_call() -> str:
        plain.messages.create(**ARGS)
        return "ok"

    def governed_call() -> str:
        current_claude().messages.create(**ARGS)
        return "ok"

    turn = itertools.count()

    def principal() -> Principal | None:
        name = session.get("username")
        return Principal(f"{name}-{next(turn) % ROTATE}", USERS[name]) if name in USERS else None

    counted = Counted(app.wsgi_app)
    app.wsgi_app = counted  # type: ignore[method-assign]
    rbac: list[Any] = []

    @app.get("/_cpu")
    def cpu() -> dict[str, Any]:
        return {
            "cpu": time.process_time(),
            "served": counted.served,
            "threads": threading.active_count(),
            "switches": _other_threads_switches(),
        }

    @app.post("/_prefill")
    def prefill_users() -> dict[str, Any]:
        return {"users": prefill(rbac[0], ROTATE) if rbac else 0}

    plain = anthropic.Anthropic(api_key=KEY, base_url="http://claude.invalid", **_options(False))
    if VARIANT == "plain-call-redis":
        import redis

        pinged = redis.Redis.from_url(REDIS)

        def plain_call_after_ping() -> str:
            pinged.ping()
            return plain_call()

        app.add_url_rule("/chat", "chat", plain_call_after_ping)
    elif VARIANT.startswith("peer"):
        from flask_limiter import Limiter
        from flask_limiter.util import get_remote_address

        storage = "memory://" if VARIANT == "peer-memory" else REDIS
        limiter = Limiter(get_remote_address, app=app, storage_uri=storage, key_prefix=f"wire-{uuid.uuid4().hex[:8]}")
        app.add_url_rule("/chat", "chat", limiter.limit("100000000/minute")(ok))
    elif VARIANT.startswith("guard") or VARIANT == "governed":
        storage = REDIS if VARIANT.endswith("redis") or os.environ.get("BENCH_STORAGE") == "redis" else "memory://"
        rbac.append(_rbac(storage, False))
        ClaudeRBAC(app, rbac=rbac[0], principal_loader=principal)
        if VARIANT == "guarded-plain-call":
            view = plain_call
        else:
            view = governed_call if "call" in VARIANT or VARIANT == "governed" else ok
        app.add_url_rule("/chat", "chat", requires_role("user")(view))
    else:
        app.add_url_rule(
            "/chat", "chat", plain_call if VARIANT in ("bare-call", "plain-call", "plain-call-again") else ok
        )
    return app


def create_starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.requests import HTTPConnection, Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from claude_rbac import Principal
    from claude_rbac.integrations.starlette import RBACMiddleware, get_claude, requires_role

    plain = anthropic.AsyncAnthropic(api_key=KEY, base_url="http://claude.invalid", **_options(True))

    async def login(request: Request) -> PlainTextResponse:
        request.session["username"] = parse_qs((await request.body()).decode())["username"][0]
        return PlainTextResponse("ok")

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def plain_call(request: Request) -> PlainTextResponse:
        await plain.messages.create(**ARGS)
        return PlainTextResponse("ok")

    async def governed_call(request: Request) -> PlainTextResponse:
        await get_claude(request).messages.create(**ARGS)
        return PlainTextResponse("ok")

    turn = itertools.count()

    def principal(connection: HTTPConnection) -> Principal | None:
        name = connection.session.get("username")
        return Principal(f"{name}-{next(turn) % ROTATE}", USERS[name]) if name in USERS else None

    middleware = [Middleware(SessionMiddleware, secret_key=SECRET)]
    chat: Any = ok
    state: dict[str, Any] = {}
    if VARIANT.startswith("peer"):
        from slowapi import Limiter
        from slowapi.util import get_remote_address

        storage = "memory://" if VARIANT == "peer-memory" else REDIS
        limiter = Limiter(key_func=get_remote_address, storage_uri=storage, key_prefix=f"wire-{uuid.uuid4().hex[:8]}")
        state["limiter"] = limiter
        chat = limiter.limit("100000000/minute")(ok)
    elif VARIANT.startswith("guard"):
        storage = REDIS if VARIANT.endswith("redis") else "memory://"
        middleware.append(Middleware(RBACMiddleware, rbac=_rbac(storage, True), principal_loader=principal))
        chat = requires_role("user")(governed_call if "call" in VARIANT else ok)
    elif VARIANT == "bare-call":
        chat = plain_call
    app = Starlette(routes=[Route("/login", login, methods=["POST"]), Route("/chat", chat)], middleware=middleware)
    for name, value in state.items():
        setattr(app.state, name, value)
    return app


flask_app = create_flask() if os.environ.get("BENCH_FRAMEWORK") == "flask" else None
starlette_app = create_starlette() if os.environ.get("BENCH_FRAMEWORK") == "starlette" else None
