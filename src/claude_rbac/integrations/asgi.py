"""Pure ASGI middleware: load the signed-in principal once per connection, and answer RBAC errors.

It handles ``http`` and ``websocket`` scopes and passes every other scope (``lifespan``) through. The
principal goes into ``scope["state"]``, where route guards and ``get_claude()`` read it; nothing
per-request is kept on the middleware. Response messages pass through as they are, so streamed and
SSE bodies are never buffered or rewritten; the middleware only notes that a response has started,
so that an :class:`~claude_rbac.errors.RBACError` escaping the app before that point can become the
Anthropic-shaped error. A websocket that is still open is closed instead: 1008 (policy violation)
for a denial, 1013 (try again later) for a rate limit or a storage outage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from ..errors import BackendUnavailable, NotAuthenticated, PolicyError, RateLimited, RBACError
from ..policy import Principal
from ..rbac import RBAC
from ._kernel import AsyncPrincipalLoader, aload_principal, error_response

DEFAULT_LOADER_TIMEOUT: Final = 5.0
"""Seconds an async principal loader may take before the request counts as signed out."""

__all__ = [
    "APP_STATE",
    "PRINCIPAL_STATE",
    "RBAC_STATE",
    "RBACMiddleware",
    "get_principal",
    "principal_of",
    "rbac_of",
    "websocket_close_code",
    "websocket_close_reason",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

RBAC_STATE: Final = "claude_rbac"
"""``scope["state"]`` key of the :class:`~claude_rbac.rbac.RBAC` that governs the connection."""
PRINCIPAL_STATE: Final = "claude_rbac_principal"
"""``scope["state"]`` key of the signed-in :class:`~claude_rbac.policy.Principal` (or ``None``)."""
APP_STATE: Final = "claude_rbac_app"
"""``scope["state"]`` key of the app the middleware wraps (``scope["app"]`` as it found it): its RBAC errors
reach the middleware; an app mounted inside it has its own error middleware, which catches them first."""

WS_POLICY_VIOLATION: Final = 1008
WS_TRY_AGAIN_LATER: Final = 1013
_WS_REASON_BYTES: Final = 123  # the most a close frame's reason may hold
_WEBSOCKET_ENDINGS: Final = frozenset({"websocket.close", "websocket.http.response.start"})


def rbac_of(scope: Scope) -> RBAC | None:
    state = scope.get("state")
    return state.get(RBAC_STATE) if state is not None else None


def principal_of(scope: Scope) -> Principal | None:
    """The principal the middleware loaded for this connection (``None`` when signed out)."""
    state = scope.get("state")
    return state.get(PRINCIPAL_STATE) if state is not None else None


get_principal = principal_of
"""The name the other integrations use for :func:`principal_of`."""


def websocket_close_code(error: RBACError) -> int:
    """1008 (policy violation) for a denial; 1013 (try again later) for a rate limit or a backend outage."""
    return WS_TRY_AGAIN_LATER if isinstance(error, (RateLimited, BackendUnavailable)) else WS_POLICY_VIOLATION


def websocket_close_reason(error: RBACError) -> str:
    """The error's message, cut to what a close frame may carry (123 bytes)."""
    return error.message.encode("utf-8")[:_WS_REASON_BYTES].decode("utf-8", "ignore")


class RBACMiddleware:
    """``RBACMiddleware(app, rbac=rbac, principal_loader=loader)``.

    ``principal_loader(scope)`` returns the :class:`~claude_rbac.policy.Principal` the app's own trusted
    identity (session, login user) says is signed in, or ``None``. It may be sync or async; a sync one
    runs on the event loop, so keep it to lookups that do not block. A loader that raises or returns
    anything else leaves the connection unauthenticated (and logs an ERROR): guarded routes deny it, and
    so does an async loader that takes longer than ``loader_timeout`` seconds (default 5; ``None`` waits).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        rbac: RBAC,
        principal_loader: AsyncPrincipalLoader,
        loader_timeout: float | None = DEFAULT_LOADER_TIMEOUT,
    ) -> None:
        if not isinstance(rbac, RBAC):
            raise TypeError(f"RBACMiddleware needs rbac=RBAC(...), got {type(rbac).__name__}")
        if not callable(principal_loader):
            raise TypeError("RBACMiddleware needs a callable principal_loader")
        self.app = app
        self.rbac = rbac
        self.principal_loader = principal_loader
        self.loader_timeout = loader_timeout
        self.adds_headers = False
        """Set by adapters that add response headers (opt-in RateLimit-*): only then is the start message touched."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._checking_startup(scope, send))
            return
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state[RBAC_STATE] = self.rbac
        state[APP_STATE] = scope.get("app")
        try:
            principal = await aload_principal(
                self.principal_loader, self.loader_argument(scope), timeout=self.loader_timeout
            )
        except NotAuthenticated:  # the loader raised or answered nonsense: logged, and the request is anonymous
            principal = None
        state[PRINCIPAL_STATE] = principal

        answered = False  # for http: a response has started; for a websocket: it has been closed

        async def noting_answer(message: Message) -> None:
            nonlocal answered
            if kind == "http" or message["type"] in _WEBSOCKET_ENDINGS:
                answered = True
            if self.adds_headers and message["type"] == "http.response.start":
                extra = [
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in await self.response_headers(scope)
                ]
                if extra:
                    message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, noting_answer)
        except RBACError as exc:
            if answered or isinstance(exc, PolicyError):
                raise  # too late for an error response, or a configuration error: let the server report it
            await _refuse(kind, send, exc)

    async def response_headers(self, scope: Scope) -> list[tuple[str, str]]:
        """Headers to add to an HTTP response's start message (only when ``adds_headers`` is set)."""
        return []

    def loader_argument(self, scope: Scope) -> object:
        """What ``principal_loader`` is called with: the ASGI scope here; framework adapters pass their request."""
        return scope

    def startup(self, app: object) -> None:
        """Called once the app reports ``lifespan.startup.complete``; raise to fail the startup.

        Framework adapters check here that every ``requires_role(...)`` names a role of the policy.
        """

    def _checking_startup(self, scope: Scope, send: Send) -> Send:
        async def send_after_checks(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                # Raising here makes the app report ``lifespan.startup.failed`` with this error.
                self.startup(scope.get("app"))
            await send(message)

        return send_after_checks


async def _refuse(kind: str, send: Send, error: RBACError) -> None:
    if kind == "websocket":
        await send(
            {"type": "websocket.close", "code": websocket_close_code(error), "reason": websocket_close_reason(error)}
        )
        return
    status, headers, body = error_response(error)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers],
        }
    )
    await send({"type": "http.response.body", "body": body})
