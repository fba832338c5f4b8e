"""The framework-free ASGI middleware: scopes, the principal in ``scope["state"]``, loaders, errors, bodies."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from claude_rbac import RBAC, AccessDenied, NotAuthenticated, PolicyError, Principal, RateLimited
from claude_rbac.integrations.asgi import (
    APP_STATE,
    PRINCIPAL_STATE,
    RBAC_STATE,
    RBACMiddleware,
    principal_of,
    rbac_of,
)
from claude_rbac.testing import FakeClaude

Message = dict[str, Any]


def http_scope(path: str = "/", **extra: Any) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b"", **extra}


async def call(app: Any, scope: dict[str, Any], incoming: list[Message] | None = None) -> list[Message]:
    pending = list(incoming or [{"type": "http.request", "body": b"", "more_body": False}])
    sent: list[Message] = []

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def scope_loader(scope: dict[str, Any]) -> Principal | None:
    """The trusted identity a test puts in the scope, the way an authentication layer would."""
    return scope.get("test.principal")


class Recorder:
    """An inner app that records what it saw and answers with the given messages."""

    def __init__(self, *answer: Message, error: BaseException | None = None, error_after: int = 0) -> None:
        self.answer = answer
        self.error = error
        self.error_after = error_after
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.seen.append({"type": scope["type"], "state": dict(scope.get("state", {}))})
        for index, message in enumerate(self.answer):
            if self.error is not None and index == self.error_after:
                raise self.error
            await send(message)
        if self.error is not None and self.error_after >= len(self.answer):
            raise self.error


OK = ({"type": "http.response.start", "status": 200, "headers": []}, {"type": "http.response.body", "body": b"ok"})


def test_principal_and_rbac_go_into_scope_state(rbac: RBAC) -> None:
    inner = Recorder(*OK)
    app = RBACMiddleware(inner, rbac=rbac, principal_loader=scope_loader)
    uma = Principal("uma", "user")

    sent = run(call(app, http_scope(**{"test.principal": uma})))

    assert sent == list(OK)
    assert inner.seen[0]["state"] == {RBAC_STATE: rbac, PRINCIPAL_STATE: uma, APP_STATE: None}  # no app in scope
    scope = http_scope(state={"kept": 1}, **{"test.principal": uma})
    run(call(app, scope))
    assert scope["state"]["kept"] == 1, "existing lifespan state is kept"
    assert principal_of(scope) == uma
    assert rbac_of(scope) is rbac


def test_async_loader_is_awaited(rbac: RBAC) -> None:
    async def load(scope: dict[str, Any]) -> Principal:
        await asyncio.sleep(0)
        return Principal(scope["path"].strip("/"), "power")

    inner = Recorder(*OK)
    run(call(RBACMiddleware(inner, rbac=rbac, principal_loader=load), http_scope("/paul")))
    assert inner.seen[0]["state"][PRINCIPAL_STATE] == Principal("paul", "power")


class AsyncCallableLoader:
    async def __call__(self, scope: dict[str, Any]) -> Principal:
        return Principal("ada", "admin")


def test_async_callable_object_loader(rbac: RBAC) -> None:
    inner = Recorder(*OK)
    run(call(RBACMiddleware(inner, rbac=rbac, principal_loader=AsyncCallableLoader()), http_scope()))
    assert inner.seen[0]["state"][PRINCIPAL_STATE] == Principal("ada", "admin")


def test_sync_loader_returning_an_awaitable_is_awaited(rbac: RBAC) -> None:
    async def lookup(name: str) -> Principal:
        return Principal(name, "user")

    inner = Recorder(*OK)
    run(call(RBACMiddleware(inner, rbac=rbac, principal_loader=lambda scope: lookup("uma")), http_scope()))
    assert inner.seen[0]["state"][PRINCIPAL_STATE] == Principal("uma", "user")


@pytest.mark.parametrize(
    "loader",
    [
        pytest.param(lambda scope: 1 / 0, id="sync-raises"),
        pytest.param(lambda scope: "ada:admin", id="sync-returns-a-string"),
    ],
)
def test_a_loader_that_fails_leaves_the_request_anonymous(
    rbac: RBAC, loader: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    inner = Recorder(*OK)
    with caplog.at_level(logging.ERROR, logger="claude_rbac"):
        sent = run(call(RBACMiddleware(inner, rbac=rbac, principal_loader=loader), http_scope()))
    assert sent[0]["status"] == 200, "the middleware itself never answers for the app"
    assert inner.seen[0]["state"][PRINCIPAL_STATE] is None
    assert [record.levelno for record in caplog.records] == [logging.ERROR]
    assert "denying" in caplog.records[0].getMessage()


def test_an_async_loader_that_raises_leaves_the_request_anonymous(rbac: RBAC, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(scope: dict[str, Any]) -> Principal:
        raise ConnectionError("user database is down")

    inner = Recorder(*OK)
    with caplog.at_level(logging.ERROR, logger="claude_rbac"):
        run(call(RBACMiddleware(inner, rbac=rbac, principal_loader=broken), http_scope()))
    assert inner.seen[0]["state"][PRINCIPAL_STATE] is None
    assert "raised" in caplog.records[0].getMessage()


def test_lifespan_and_other_scopes_pass_through(rbac: RBAC) -> None:
    calls: list[Any] = []

    def loader(scope: dict[str, Any]) -> None:
        calls.append(scope)

    inner = Recorder({"type": "lifespan.startup.complete"})
    app = RBACMiddleware(inner, rbac=rbac, principal_loader=loader)
    sent = run(call(app, {"type": "lifespan"}, [{"type": "lifespan.startup"}]))
    assert sent == [{"type": "lifespan.startup.complete"}]
    assert inner.seen == [{"type": "lifespan", "state": {}}], "no principal is loaded for lifespan"
    run(call(app, {"type": "custom.protocol"}))
    assert inner.seen[-1]["type"] == "custom.protocol"
    assert calls == []


def test_no_per_request_state_on_the_middleware(rbac: RBAC) -> None:
    """Two interleaved requests with different principals each see their own."""
    seen: dict[str, Any] = {}
    both_inside = asyncio.Event()

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen[scope["path"]] = scope["state"][PRINCIPAL_STATE]
        if len(seen) == 2:
            both_inside.set()
        await both_inside.wait()
        seen[scope["path"] + ":after"] = scope["state"][PRINCIPAL_STATE]
        for message in OK:
            await send(message)

    async def load(scope: dict[str, Any]) -> Principal:
        await asyncio.sleep(0)
        return Principal(scope["path"].strip("/"), "user")

    app = RBACMiddleware(inner, rbac=rbac, principal_loader=load)
    before = dict(vars(app))

    async def both() -> None:
        await asyncio.gather(call(app, http_scope("/uma")), call(app, http_scope("/vera")))

    run(both())
    assert seen["/uma"] == seen["/uma:after"] == Principal("uma", "user")
    assert seen["/vera"] == seen["/vera:after"] == Principal("vera", "user")
    assert vars(app) == before


def test_streamed_body_passes_through_untouched(rbac: RBAC) -> None:
    chunks = [b"event: a\ndata: 1\n\n", b"", b"event: b\ndata: \xff\xfe2\n\n", b"x" * 70_000]
    answer = [{"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}]
    answer += [{"type": "http.response.body", "body": chunk, "more_body": True} for chunk in chunks]
    answer += [{"type": "http.response.body", "body": b"", "more_body": False}]
    app = RBACMiddleware(Recorder(*answer), rbac=rbac, principal_loader=scope_loader)

    sent = run(call(app, http_scope()))

    assert sent == answer, "every message arrives as sent: same chunks, same order, nothing buffered"
    assert all(a is b for a, b in zip(sent, answer, strict=True)), "not even copied"


@pytest.mark.parametrize(
    ("error", "status", "error_type", "code"),
    [
        (NotAuthenticated(), 401, "authentication_error", "unauthenticated"),
        (
            AccessDenied("Role 'user' may not use this route.", reason="role_insufficient"),
            403,
            "permission_error",
            "role_insufficient",
        ),
        (
            RateLimited("Too many requests per minute; retry later.", retry_after=7.2),
            429,
            "rate_limit_error",
            "rate_limited",
        ),
    ],
)
def test_an_rbac_error_before_the_response_becomes_the_anthropic_error(
    rbac: RBAC, error: Exception, status: int, error_type: str, code: str
) -> None:
    app = RBACMiddleware(Recorder(error=error), rbac=rbac, principal_loader=scope_loader)
    sent = run(call(app, http_scope()))
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == status
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"application/json"
    body = json.loads(sent[1]["body"])
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert body["error"]["error_code"] == code
    assert int(headers[b"content-length"]) == len(sent[1]["body"])
    if status == 429:
        assert headers[b"retry-after"] == b"8"


def test_an_rbac_error_after_the_response_started_is_raised(rbac: RBAC) -> None:
    start = {"type": "http.response.start", "status": 200, "headers": []}
    app = RBACMiddleware(
        Recorder(start, error=RateLimited("x", retry_after=1), error_after=1), rbac=rbac, principal_loader=scope_loader
    )
    with pytest.raises(RateLimited):
        run(call(app, http_scope()))


def test_a_policy_error_is_raised_not_answered(rbac: RBAC) -> None:
    app = RBACMiddleware(Recorder(error=PolicyError("bad policy")), rbac=rbac, principal_loader=scope_loader)
    with pytest.raises(PolicyError):
        run(call(app, http_scope()))


def test_other_errors_pass_through(rbac: RBAC) -> None:
    app = RBACMiddleware(Recorder(error=KeyError("boom")), rbac=rbac, principal_loader=scope_loader)
    with pytest.raises(KeyError):
        run(call(app, http_scope()))


def test_a_denied_websocket_is_closed_with_1008(rbac: RBAC) -> None:
    app = RBACMiddleware(Recorder(error=AccessDenied("no")), rbac=rbac, principal_loader=scope_loader)
    sent = run(call(app, {"type": "websocket", "path": "/ws", "headers": []}, [{"type": "websocket.connect"}]))
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "no"}]


def test_a_rate_limited_websocket_is_closed_with_1013_after_accept(rbac: RBAC) -> None:
    accept = {"type": "websocket.accept"}
    app = RBACMiddleware(
        Recorder(accept, error=RateLimited("Too many requests per minute; retry later.", retry_after=3), error_after=1),
        rbac=rbac,
        principal_loader=scope_loader,
    )
    sent = run(call(app, {"type": "websocket", "path": "/ws", "headers": []}, [{"type": "websocket.connect"}]))
    assert sent == [
        accept,
        {"type": "websocket.close", "code": 1013, "reason": "Too many requests per minute; retry later."},
    ]


def test_constructor_checks(rbac: RBAC) -> None:
    with pytest.raises(TypeError, match="rbac"):
        RBACMiddleware(Recorder(), rbac="memory://", principal_loader=scope_loader)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="principal_loader"):
        RBACMiddleware(Recorder(), rbac=rbac, principal_loader=None)  # type: ignore[arg-type]


def test_nothing_reaches_claude_through_the_middleware_alone(rbac: RBAC, fake_claude: FakeClaude) -> None:
    app = RBACMiddleware(Recorder(*OK), rbac=rbac, principal_loader=scope_loader)
    run(call(app, http_scope(**{"test.principal": Principal("ada", "admin")})))
    assert fake_claude.requests == []
