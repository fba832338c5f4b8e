"""FastAPI: ``requires_role(...)`` is a dependency that provides the governed ``AsyncAnthropic``.

    app.add_middleware(RBACMiddleware, rbac=rbac, principal_loader=load_user)

    @app.post("/chat")
    async def chat(claude: AsyncAnthropic = Depends(requires_role("power"))): ...

    PowerClaude = Annotated[AsyncAnthropic, Depends(requires_role("power"))]      # an alias
    router = APIRouter(dependencies=[Depends(requires_role("user"))])              # guard only

An app whose identity is a dependency of its own (``OAuth2PasswordBearer``...) needs no middleware:
``claude = ClaudeRBAC(app, rbac=rbac, principal_loader=current_principal)`` registers the Anthropic error
bodies and the OpenAPI errors, then ``Depends(claude.requires_role("power"))`` guards a route.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Final

from anthropic import AsyncAnthropic
from fastapi import Depends, FastAPI
from fastapi import routing as fastapi_routing
from opentelemetry import trace
from starlette.requests import HTTPConnection
from starlette.types import Scope
from typing_extensions import Unpack

from ..policy import Narrowing, Principal
from ..rbac import RBAC
from . import asgi
from . import starlette as starlette_adapter
from ._kernel import GUARD_ATTRIBUTE, Admission, Guard
from .starlette import (
    ADMISSION_STATE,
    EventStreamResponse,
    check_errors_answered,
    get_claude,
    get_principal,
    install_error_handler,
    mounted_apps,
    rbac_exception_handler,
    walk_routes,
)
from .starlette import route_of as starlette_route_of

__all__ = [
    "ERROR_RESPONSES",
    "ClaudeRBAC",
    "EventStreamResponse",
    "RBACMiddleware",
    "document_errors",
    "get_claude",
    "get_principal",
    "route_of",
    "rbac_exception_handler",
    "requires_role",
]

log = logging.getLogger("claude_rbac")

_ERROR_SCHEMA: Final[dict[str, Any]] = {
    "title": "AnthropicError",
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"type": "string", "enum": ["error"]},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "error_code": {"type": "string"},
            },
        },
    },
}


def _error_response(description: str, error_type: str, message: str, code: str) -> dict[str, Any]:
    example = {"type": "error", "error": {"type": error_type, "message": message, "error_code": code}}
    return {"description": description, "content": {"application/json": {"schema": _ERROR_SCHEMA, "example": example}}}


ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    401: _error_response("Not signed in.", "authentication_error", "Sign in to use this route.", "unauthenticated"),
    403: _error_response(
        "The signed-in role may not use this route, model or max_tokens.",
        "permission_error",
        "Role 'user' may not use model 'claude-opus-4-7'.",
        "model_not_allowed",
    ),
    429: {
        **_error_response(
            "Too many requests or tokens for the role; retry after Retry-After seconds.",
            "rate_limit_error",
            "Too many requests per minute; retry later.",
            "rate_limited",
        ),
        "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    },
    503: _error_response(
        "Access control is unavailable (fail closed).",
        "api_error",
        "Access control is temporarily unavailable.",
        "backend_unavailable",
    ),
}
"""The OpenAPI ``responses`` of a guarded route: ``RBACMiddleware`` adds them to every guarded operation
at startup (see :func:`document_errors`); or pass them to ``responses=`` of a route or router yourself."""


def requires_role(
    role: str,
    *,
    principal_loader: Callable[..., Any] | None = None,
    rbac: RBAC | None = None,
    principal_dependency: Callable[..., Any] | None = None,
    **narrowing: Unpack[Narrowing],
) -> Callable[..., Awaitable[AsyncAnthropic]]:
    """A dependency admitting principals with ``role`` (or one that inherits it); its value is the governed client.

    The principal comes from ``principal_loader`` (a FastAPI dependency of the app's own that returns a
    ``Principal`` or ``None``) when given, else from ``RBACMiddleware``. The ``RBAC`` is ``rbac`` when given
    (the role is then checked against its policy right here), else the middleware's.
    A denial raises ``NotAuthenticated`` (401) or ``AccessDenied`` (403). ``principal_dependency`` is the
    old spelling of ``principal_loader`` (deprecated).
    """
    if principal_dependency is not None:
        warnings.warn(
            "requires_role(principal_dependency=...) is deprecated: use principal_loader=...",
            DeprecationWarning,
            stacklevel=2,
        )
        principal_loader = principal_loader or principal_dependency
    guard = Guard.declare(role, **narrowing)
    if rbac is not None:
        guard.validate(rbac)

    if principal_loader is None:

        async def from_middleware(connection: HTTPConnection) -> AsyncAnthropic:
            return _admit(connection, guard, rbac, asgi.principal_of(connection.scope))

        dependency = from_middleware
    else:
        source = getattr(principal_loader, "__qualname__", type(principal_loader).__name__)

        async def from_dependency(
            connection: HTTPConnection,
            principal: Any = Depends(principal_loader),  # noqa: B008 (FastAPI's own idiom)
        ) -> AsyncAnthropic:
            if principal is not None and not isinstance(principal, Principal):
                log.error("claude_rbac: %s returned %s, not a Principal or None; denying", source, type(principal))
                principal = None
            return _admit(connection, guard, rbac, principal)

        dependency = from_dependency
    dependency.__qualname__ = dependency.__name__ = f"requires_role({role!r})"
    setattr(dependency, GUARD_ATTRIBUTE, guard)
    return dependency


def _admit(connection: HTTPConnection, guard: Guard, rbac: RBAC | None, principal: Principal | None) -> AsyncAnthropic:
    scope = connection.scope
    rbac = rbac or asgi.rbac_of(scope)
    if rbac is None:
        raise RuntimeError(
            "requires_role() has no RBAC: add RBACMiddleware(app, rbac=...), or, with an identity dependency of "
            "your own, claude = ClaudeRBAC(app, rbac=..., principal_loader=...) and Depends(claude.requires_role(...))"
        )
    check_errors_answered(scope)
    guard.validate(rbac)
    state = scope.setdefault("state", {})
    previous = state.get(ADMISSION_STATE)
    previous = previous if isinstance(previous, Admission) else None
    route = route_of(scope)
    server_span = _server_span(scope)
    if server_span is None:
        admission = guard.admit(rbac, principal, route, previous)
    else:
        # FastAPI's own telemetry makes an INTERNAL "fastapi.dependencies" span current here; the decision's
        # enduser.id / user.roles belong on the request's SERVER span, where dashboards look for them.
        with trace.use_span(server_span, record_exception=False, set_status_on_exception=False):
            admission = guard.admit(rbac, principal, route, previous)
    state[ADMISSION_STATE] = admission  # every guard of the request narrows it; get_claude() reads it
    return asgi.granted_client(admission, asynchronous=True)  # type: ignore[no-any-return]


def _server_span(scope: Scope) -> trace.Span | None:
    span = getattr(scope.get("fastapi.telemetry"), "span", None)  # FastAPI 0.160+ native telemetry
    return span if isinstance(span, trace.Span) and span.is_recording() else None


def route_of(scope: Scope) -> str | None:
    """The route template for the audit trail (``/team/items/{id}``, with an included router's prefix)."""
    # FastAPI 0.160+ keeps an included router's routes unflattened: scope["route"] is the route as
    # declared ("/report"), and the path with the router's prefix ("/team/report") is on its effective context.
    context = (scope.get("fastapi") or {}).get("effective_route_context")
    path = getattr(context, "path_format", None)
    if isinstance(path, str) and path:
        return str(scope.get("root_path", "")) + path
    return starlette_route_of(scope)


class ClaudeRBAC:
    """FastAPI with an identity dependency of the app's own (``OAuth2PasswordBearer``, a JWT check), no middleware.

        claude = ClaudeRBAC(app, rbac=rbac, principal_loader=current_principal)

        @app.post("/chat")
        async def chat(client: AsyncAnthropic = Depends(claude.requires_role("power"))): ...

    It registers :func:`rbac_exception_handler` for ``RBACError`` on the app (unless the app has its own) and
    documents 401/403/429/503 in its OpenAPI schema; ``requires_role`` then needs neither ``rbac=`` nor
    ``principal_loader=``. ``principal_loader`` is a FastAPI dependency returning a ``Principal`` or ``None``.
    ``ClaudeRBAC(rbac=..., principal_loader=...)`` without an app, then ``init_app(app)``, works too.
    """

    def __init__(self, app: FastAPI | None = None, *, rbac: RBAC, principal_loader: Callable[..., Any]) -> None:
        if not isinstance(rbac, RBAC):
            raise TypeError(f"ClaudeRBAC needs rbac=RBAC(...), got {type(rbac).__name__}")
        if not callable(principal_loader):
            raise TypeError("ClaudeRBAC needs principal_loader=, a dependency returning a Principal or None")
        self.rbac = rbac
        self.principal_loader = principal_loader
        if app is not None:
            self.init_app(app)

    def init_app(self, app: FastAPI) -> None:
        """Register the Anthropic error handler (unless the app has one) and the OpenAPI errors on ``app``."""
        install_error_handler(app)
        document_errors(app)

    def requires_role(
        self,
        role: str,
        **narrowing: Unpack[Narrowing],
    ) -> Callable[..., Awaitable[AsyncAnthropic]]:
        """:func:`requires_role` with this ``rbac`` and ``principal_loader``; the role is checked right here."""
        return requires_role(
            role,
            rbac=self.rbac,
            principal_loader=self.principal_loader,
            **narrowing,
        )


class RBACMiddleware(starlette_adapter.RBACMiddleware):
    """The Starlette middleware; at startup it also documents 401/403/429/503 on every guarded route."""

    def routes_of(self, app: object) -> Iterator[Any]:
        return _route_contexts(getattr(app, "routes", ()))

    def route_guards(self, route: object) -> Iterator[Guard]:
        yield from super().route_guards(route)
        dependant = getattr(route, "dependant", None)
        if dependant is not None:
            yield from _dependency_guards(dependant)

    def startup(self, app: object) -> None:
        super().startup(app)
        for documented in (app, *mounted_apps(getattr(app, "routes", ()))):
            if isinstance(documented, FastAPI):
                document_errors(documented)


def _route_contexts(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route with its effective settings (prefix, router dependencies), descending into mounts."""
    iterate = getattr(fastapi_routing, "iter_route_contexts", None)
    if iterate is None:  # FastAPI before 0.160 flattens included routers itself
        yield from walk_routes(routes)
        return
    for context in iterate(list(routes)):
        yield context
        children = getattr(context.original_route, "routes", None)
        if children:
            yield from _route_contexts(children)


def _dependency_guards(dependant: Any) -> Iterator[Guard]:
    guard = getattr(dependant.call, GUARD_ATTRIBUTE, None)
    if isinstance(guard, Guard):
        yield guard
    for child in dependant.dependencies:
        yield from _dependency_guards(child)


def document_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` list :data:`ERROR_RESPONSES` on every operation guarded by ``requires_role``.

    ``RBACMiddleware`` calls this at startup; an app without the middleware can call it itself.
    It wraps ``app.openapi`` (FastAPI's documented way to extend the schema); calling it twice is harmless.
    """
    generate = app.openapi
    if getattr(generate, _DOCUMENTS_ERRORS, False):
        return

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = generate()
        if fresh:
            _add_error_responses(schema, app.routes)
        return schema

    setattr(openapi, _DOCUMENTS_ERRORS, True)
    app.openapi = openapi  # type: ignore[method-assign]
    app.openapi_schema = None


_DOCUMENTS_ERRORS: Final = "__claude_rbac_documents_errors__"


def _add_error_responses(schema: dict[str, Any], routes: Iterable[Any]) -> None:
    paths = schema.get("paths", {})
    for route in _route_contexts(routes):
        dependant = getattr(route, "dependant", None)
        if dependant is None or not any(_dependency_guards(dependant)):
            continue
        operations = paths.get(getattr(route, "path_format", None), {})
        for method in getattr(route, "methods", None) or ():
            operation = operations.get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status, response in ERROR_RESPONSES.items():
                responses.setdefault(str(status), copy.deepcopy(response))
