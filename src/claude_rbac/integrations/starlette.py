"""Starlette: ``RBACMiddleware``, the ``requires_role`` endpoint decorator and ``get_claude(request)``.

    app = Starlette(routes=[...], middleware=[
        Middleware(SessionMiddleware, secret_key=...),
        Middleware(RBACMiddleware, rbac=rbac),          # after the middleware that signs users in
    ])

    @requires_role("power", models=["claude-sonnet-*"])
    async def chat(request: Request) -> Response:
        claude = get_claude(request)                     # a governed anthropic.AsyncAnthropic
        ...

Like Starlette's own ``requires``, the decorator covers async and sync endpoints, ``HTTPEndpoint``
methods and websocket endpoints, but it finds the request by type, not by parameter name.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Mapping
from typing import Any, Final, TypeVar, cast

import anyio
from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.responses import Response, StreamingResponse
from starlette.routing import Host, Mount
from starlette.types import ASGIApp, ExceptionHandler, Receive, Scope, Send
from starlette.websockets import WebSocket
from typing_extensions import Unpack

from ..errors import PolicyError, RBACError
from ..policy import Narrowing, Principal
from ..rbac import RBAC
from . import asgi
from ._kernel import (
    GUARD_ATTRIBUTE,
    NOT_ADMITTED,
    Admission,
    AsyncPrincipalLoader,
    Guard,
    RateLimitStyle,
    check_rate_limit_style,
    error_response,
)
from ._starlette_loaders import NO_SESSION_ROLE, RoleLoader, scope_loader, session_or_user_loader

__all__ = [
    "ADMISSION_STATE",
    "EventStreamResponse",
    "RBACMiddleware",
    "get_admission",
    "get_claude",
    "get_principal",
    "install_error_handler",
    "mounted_apps",
    "rbac_exception_handler",
    "RoleLoader",
    "requires_role",
    "session_or_user_loader",
]

F = TypeVar("F", bound=Callable[..., Any])

ADMISSION_STATE: Final = asgi.ADMISSION_STATE
"""``scope["state"]`` key of the :class:`~claude_rbac.integrations.Admission` the request's guards left."""


class RBACMiddleware(asgi.RBACMiddleware):
    """The ASGI middleware, calling ``principal_loader(connection)`` with a Starlette ``HTTPConnection``.

    Without a ``principal_loader`` it uses :func:`session_or_user_loader` (``role_attribute``,
    ``session_key``, ``role_loader``). At startup it checks that
    every ``requires_role`` of the app's routes names a role of the policy (a ``PolicyError`` fails it).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        rbac: RBAC,
        principal_loader: AsyncPrincipalLoader | None = None,
        role_attribute: str = "role",
        session_key: str = "user_id",
        role_loader: RoleLoader | None = None,
        loader_timeout: float | None = asgi.DEFAULT_LOADER_TIMEOUT,
        rate_limit_headers: RateLimitStyle | None = None,
        session_keys: None = None,
    ) -> None:
        if session_keys is not None:
            raise TypeError(NO_SESSION_ROLE)
        # The default loader reads the scope itself: no HTTPConnection to build per request.
        self._loader_takes_connection = principal_loader is not None
        loader = principal_loader or scope_loader(role_attribute, session_key, role_loader)
        super().__init__(app, rbac=rbac, principal_loader=loader, loader_timeout=loader_timeout)
        self.rate_limit_style = check_rate_limit_style(rate_limit_headers, "rate_limit_headers")
        self.adds_headers = rate_limit_headers is not None

    async def response_headers(self, scope: asgi.Scope) -> list[tuple[str, str]]:
        """``RateLimit-*`` (or ``X-RateLimit-*``) on a response a guard admitted: one more storage read."""
        admission = (scope.get("state") or {}).get(ADMISSION_STATE)
        if not isinstance(admission, Admission) or self.rate_limit_style is None:
            return []
        return await admission.arate_limit_headers(self.rate_limit_style)

    def loader_argument(self, scope: asgi.Scope) -> object:
        return HTTPConnection(scope) if self._loader_takes_connection else scope

    def startup(self, app: object) -> None:
        for route in self.routes_of(app):
            for guard in self.route_guards(route):
                guard.validate(self.rbac)
        wrapped_from_outside = isinstance(app, Starlette) and self.app is app  # RBACMiddleware(Starlette(...))
        for answering in (*((app,) if wrapped_from_outside else ()), *mounted_apps(getattr(app, "routes", ()))):
            install_error_handler(answering)

    def routes_of(self, app: object) -> Iterator[Any]:
        return walk_routes(getattr(app, "routes", ()))

    def route_guards(self, route: object) -> Iterator[Guard]:
        """The guards one route declares (the FastAPI adapter adds those of its dependencies)."""
        yield from endpoint_guards(getattr(route, "endpoint", None))


def mounted_apps(routes: Iterable[Any]) -> Iterator[Starlette]:
    """Every Starlette (or FastAPI) app mounted under ``routes`` (``Mount``, ``Host``), at any depth."""
    for route in routes:
        target = getattr(route, "app", None) if isinstance(route, (Mount, Host)) else None
        for _ in range(_MAX_WRAPPERS):  # through the middleware a Mount(middleware=[...]) wraps around its app
            if target is None or isinstance(target, Starlette):
                break
            target = getattr(target, "app", None)
        if isinstance(target, Starlette):
            yield target
        yield from mounted_apps(getattr(route, "routes", None) or ())


_MAX_WRAPPERS: Final = 32


def handles_rbac_errors(app: Starlette) -> bool:
    """Whether ``app``'s own exception handlers answer every ``RBACError`` (a catch-all ``Exception`` does not:
    Starlette answers those with a 500)."""
    return any(
        isinstance(key, type) and key not in (Exception, BaseException) and issubclass(RBACError, key)
        for key in app.exception_handlers
    )


def install_error_handler(app: Starlette) -> None:
    """Give ``app`` :func:`rbac_exception_handler` for ``RBACError``, unless it answers them itself."""
    if handles_rbac_errors(app):
        return
    app.add_exception_handler(RBACError, cast(ExceptionHandler, rbac_exception_handler))
    if app.middleware_stack is not None:
        app.middleware_stack = None  # built before: build it again, with the handler, on its next call


def check_errors_answered(scope: Scope) -> None:
    """Raise ``RuntimeError`` when an ``RBACError`` raised in this request would become a bare 500.

    The app serving the request answers them when ``RBACMiddleware`` wraps it, or when it has a handler; an
    app mounted under the middleware's app has its own error middleware, which answers with a 500 first.
    """
    app = scope.get("app")
    state = scope.get("state") or {}
    if not isinstance(app, Starlette) or app is state.get(asgi.APP_STATE) or handles_rbac_errors(app):
        return
    if asgi.RBAC_STATE in state:
        raise RuntimeError(
            "requires_role() in an app that RBACMiddleware does not answer for (mounted under the middleware's "
            "app, or wrapped by it from outside) and that has no handler for RBACError (its denials would be "
            "500s): RBACMiddleware installs one at startup, so run the app with its lifespan, or give the app "
            "exception_handlers={RBACError: rbac_exception_handler}"
        )
    raise RuntimeError(
        "requires_role() on an app without RBACMiddleware and without a handler for RBACError (its denials "
        "would be 500s): add RBACMiddleware, or app.add_exception_handler(RBACError, rbac_exception_handler)"
        " (FastAPI: ClaudeRBAC(app, rbac=..., principal_loader=...) does it)"
    )


def walk_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route, descending into ``Mount``, ``Host`` and routers."""
    for route in routes:
        yield route
        children = getattr(route, "routes", None)
        if children:
            yield from walk_routes(children)


def endpoint_guards(endpoint: object) -> Iterator[Guard]:
    """The guards of a function endpoint, or of the methods of an ``HTTPEndpoint``/``WebSocketEndpoint`` class."""
    if inspect.isclass(endpoint):
        for klass in endpoint.__mro__:
            for member in vars(klass).values():
                yield from endpoint_guards(member)
        return
    guard = getattr(endpoint, GUARD_ATTRIBUTE, None)
    if isinstance(guard, Guard):
        yield guard
    inner = getattr(endpoint, "__wrapped__", None)
    if inner is not None:  # a guard stacked under another (each narrows the request)
        yield from endpoint_guards(inner)


def get_principal(connection: HTTPConnection) -> Principal | None:
    """The principal ``RBACMiddleware`` loaded for this request or websocket (``None`` when signed out)."""
    return asgi.principal_of(connection.scope)


def get_admission(connection: HTTPConnection) -> Admission:
    """The admission the request's guards left; ``RuntimeError`` when no guard admitted it."""
    admission = (connection.scope.get("state") or {}).get(ADMISSION_STATE)
    if not isinstance(admission, Admission):
        raise RuntimeError(NOT_ADMITTED)
    return admission


def get_claude(connection: HTTPConnection) -> Any:
    """The governed client for the request a ``requires_role`` endpoint admitted.

    An ``anthropic.AsyncAnthropic`` in an async endpoint (where an event loop runs), an
    ``anthropic.Anthropic`` in a sync one (Starlette runs those in a thread). Derived on first use and
    cached by the ``RBAC``. Each call it makes on a websocket, or in a background task after the response,
    first asks the principal loader again (see :func:`~claude_rbac.integrations.asgi.granted_client`).
    """
    admission = get_admission(connection)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asgi.granted_client(admission, asynchronous=False)
    return asgi.granted_client(admission, asynchronous=True)


def route_of(scope: Scope) -> str | None:
    """The route template (``/items/{id}``) for the audit trail, else the path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return str(scope.get("root_path", "")) + path
    return scope.get("path")


def admit(connection: HTTPConnection, guard: Guard) -> Admission:
    """The route guard: raise ``NotAuthenticated``/``AccessDenied`` unless the principal has the role.

    Several guards on one request (a router's, an endpoint's) each narrow it: their scopes intersect.
    """
    state = connection.scope.get("state")
    rbac = state.get(asgi.RBAC_STATE) if state is not None else None
    if state is None or rbac is None:
        raise RuntimeError("requires_role() needs RBACMiddleware on the app")
    check_errors_answered(connection.scope)
    guard.validate(rbac)  # a dict lookup: a role missing from the policy fails loudly, never as a quiet 403
    previous = state.get(ADMISSION_STATE)
    admission = guard.admit(
        rbac,
        state.get(asgi.PRINCIPAL_STATE),
        route_of(connection.scope),
        previous if isinstance(previous, Admission) else None,
    )
    state[ADMISSION_STATE] = admission
    return admission


def _connection_in(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> HTTPConnection:
    for value in args:
        if isinstance(value, HTTPConnection):
            return value
    for value in kwargs.values():
        if isinstance(value, HTTPConnection):
            return value
    raise TypeError("a requires_role() endpoint must receive the Request or WebSocket")


def _is_async(func: Callable[..., Any]) -> bool:
    """A coroutine function, or a partial of one, or an object with an ``async def __call__``."""
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(type(func).__call__)


_POSITIONAL: Final = (
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.VAR_POSITIONAL,
)


def _check_endpoint(func: Callable[..., Any]) -> None:
    if not callable(func):
        raise TypeError(f"requires_role() decorates an endpoint function, got {func!r}")
    if not any(p.kind in _POSITIONAL for p in inspect.signature(func).parameters.values()):
        raise TypeError(f"requires_role(): {func.__qualname__} takes no argument, so it cannot receive the request")


def requires_role(
    role: str,
    **narrowing: Unpack[Narrowing],
) -> Callable[[F], F]:
    """Admit the request only when the signed-in principal has ``role`` (or a role that inherits it).

    ``models``, ``max_tokens``, ``rpm`` and the request-field grants (``tools``... ``betas``) narrow what
    ``get_claude()`` may do on this route; they never widen the role. A bad declaration raises
    ``PolicyError`` here, at import time. A denial raises ``NotAuthenticated`` (401) or ``AccessDenied``
    (403); ``RBACMiddleware`` turns it into the Anthropic error body, or closes a websocket with code 1008.
    """
    guard = Guard.declare(role, **narrowing)

    def decorator(func: F) -> F:
        _check_endpoint(func)
        wrapper: Callable[..., Any]
        if _is_async(func):

            @functools.wraps(func)
            async def async_endpoint(*args: Any, **kwargs: Any) -> Any:
                admit(_connection_in(args, kwargs), guard)
                return await func(*args, **kwargs)

            wrapper = async_endpoint
        else:

            @functools.wraps(func)
            def sync_endpoint(*args: Any, **kwargs: Any) -> Any:
                admit(_connection_in(args, kwargs), guard)
                return func(*args, **kwargs)

            wrapper = sync_endpoint
        setattr(wrapper, GUARD_ATTRIBUTE, guard)
        return wrapper  # type: ignore[return-value]

    return decorator


async def rbac_exception_handler(connection: HTTPConnection, exc: Exception) -> Response | None:
    """A Starlette exception handler for ``RBACError``: the Anthropic error body, or a websocket close.

    ``RBACMiddleware`` already does this; register it (``exception_handlers={RBACError: ...}``) when
    an app has no middleware, e.g. a FastAPI app that takes its principal from its own dependency.
    """
    if not isinstance(exc, RBACError) or isinstance(exc, PolicyError):
        raise exc  # a configuration error is the server's 500 (and its log), as with the middleware
    if isinstance(connection, WebSocket):
        await connection.close(code=asgi.websocket_close_code(exc), reason=asgi.websocket_close_reason(exc))
        return None
    status, _, body = error_response(exc)
    return Response(body, status_code=status, headers=exc.headers, media_type="application/json")


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` ``StreamingResponse`` that always closes its body iterator.

    ``StreamingResponse`` leaves an async generator suspended when the client disconnects, so a
    Claude stream opened inside it (and its SDK span and token settlement) would wait for the garbage
    collector. This one ``aclose()``s the generator when the response ends, however it ends.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        content: AsyncIterable[str | bytes],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            content,
            status_code=status_code,
            headers={"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()
