"""Pure ASGI middleware: load the signed-in principal once per connection, and answer RBAC errors.

It handles ``http`` and ``websocket`` scopes and passes every other scope (``lifespan``) through. The
principal goes into ``scope["state"]``, where route guards and ``get_claude()`` read it; nothing
per-request is kept on the middleware. Response messages pass through as they are, so streamed and
SSE bodies are never buffered or rewritten; the middleware only notes that a response has started,
so that an :class:`~claude_rbac.errors.RBACError` escaping the app before that point can become the
Anthropic-shaped error. A websocket that is still open is closed instead: 1008 (policy violation)
for a denial, 1013 (try again later) for a rate limit or a storage outage.

A client a guard granted (:func:`granted_client`) believes its principal for the request it was granted
for. A call it makes later than that (on an open websocket, or after the HTTP response was sent: a
background task) first asks the principal loader again, and is refused when the principal signed in now
is not the one admitted: a user removed or demoted meanwhile gets no more Claude calls.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final
from weakref import WeakKeyDictionary

import anthropic
import anyio.from_thread
from anthropic import APIRequest, APIResponse, AsyncAPIResponse, AsyncCallNext, CallNext, Middleware

from ..errors import BackendUnavailable, NotAuthenticated, PolicyError, RateLimited, RBACError, message_for
from ..policy import Principal
from ..rbac import RBAC
from ._kernel import Admission, AsyncPrincipalLoader, aload_principal, error_response

DEFAULT_LOADER_TIMEOUT: Final = 5.0
"""Seconds an async principal loader may take before the request counts as signed out."""

__all__ = [
    "ADMISSION_STATE",
    "APP_STATE",
    "PRINCIPAL_STATE",
    "RBAC_STATE",
    "RBACMiddleware",
    "get_principal",
    "granted_client",
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
ADMISSION_STATE: Final = "claude_rbac_admission"
"""``scope["state"]`` key of the :class:`~claude_rbac.integrations.Admission` the request's guards left."""
APP_STATE: Final = "claude_rbac_app"
"""``scope["state"]`` key of the app the middleware wraps (``scope["app"]`` as it found it): its RBAC errors
reach the middleware; an app mounted inside it has its own error middleware, which catches them first."""

WS_POLICY_VIOLATION: Final = 1008
WS_TRY_AGAIN_LATER: Final = 1013
_WS_REASON_BYTES: Final = 123  # the most a close frame's reason may hold
_WEBSOCKET_ENDINGS: Final = frozenset({"websocket.close", "websocket.http.response.start"})

log = logging.getLogger("claude_rbac")


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
        state[PRINCIPAL_STATE] = await self.load(scope)
        connection = _Connection(kind == "websocket", scope, functools.partial(self.load, scope))
        answered = False  # for http: a response has started; for a websocket: it has been closed

        async def noting_answer(message: Message) -> None:
            nonlocal answered
            if kind == "http" or message["type"] in _WEBSOCKET_ENDINGS:
                answered = True
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                connection.responded = True
            if self.adds_headers and message["type"] == "http.response.start":
                extra = [
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in await self.response_headers(scope)
                ]
                if extra:
                    message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        token = _CONNECTION.set(connection)
        try:
            await self.app(scope, receive, noting_answer)
        except RBACError as exc:
            if answered or isinstance(exc, PolicyError):
                raise  # too late for an error response, or a configuration error: let the server report it
            await _refuse(kind, send, exc)
        finally:
            _CONNECTION.reset(token)

    async def load(self, scope: Scope) -> Principal | None:
        """The principal signed in on this connection now; ``None`` when the loader fails (logged)."""
        try:
            return await aload_principal(
                self.principal_loader, self.loader_argument(scope), timeout=self.loader_timeout
            )
        except NotAuthenticated:  # the loader raised or answered nonsense: logged, and the request is anonymous
            return None

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


# -- granted clients: believed for their request, asked again after it ----------------------------------


@dataclass(eq=False, slots=True)
class _Connection:
    """One HTTP request or websocket the middleware serves, as the clients granted in it see it."""

    websocket: bool
    scope: Scope
    resolve: Callable[[], Coroutine[Any, Any, Principal | None]]
    """The principal loader, asked again (fail closed: ``None`` when it raises or times out)."""
    responded: bool = False
    """The HTTP response has been sent in full: whatever calls Claude now is a background task."""

    @property
    def outlived(self) -> bool:
        """A call now comes later than the request that was admitted: each websocket message may be hours
        after the handshake, and a background task runs after the response."""
        return self.websocket or self.responded


_CONNECTION: ContextVar[_Connection | None] = ContextVar("claude_rbac_connection", default=None)
_GRANTED: WeakKeyDictionary[Any, Any] = WeakKeyDictionary()
_GRANTED_LOCK = threading.Lock()


def granted_client(admission: Admission, *, asynchronous: bool) -> Any:
    """The governed client of ``admission``, which checks its principal again before each later call.

    Derived once per governed client (cached beside it), so a request pays a dictionary lookup. A call made
    on a websocket, or after the HTTP response was sent, asks the connection's principal loader first; a
    principal other than the one admitted is refused: the guards' own denial when they refuse the new one
    (recorded, like any guard decision), else 401. Outside ``RBACMiddleware`` (FastAPI's dependency mode)
    there is no loader to ask, and the client is believed as it was granted.
    """
    governed: anthropic.Anthropic | anthropic.AsyncAnthropic = (
        admission.async_client() if asynchronous else admission.client()
    )
    granted = _GRANTED.get(governed)
    if granted is None:
        check = _PrincipalCheck(admission.rbac, admission.principal)
        granted = governed.with_options(middleware=[check, *governed.middleware])
        with _GRANTED_LOCK:
            _GRANTED[governed] = granted
    return granted


class _PrincipalCheck(Middleware):
    """SDK middleware, ahead of the governor: is the principal this client acts for still the one signed in?"""

    def __init__(self, rbac: RBAC, principal: Principal | None) -> None:
        self._rbac = rbac
        self._principal = principal

    async def handle_async(self, request: APIRequest, call_next: AsyncCallNext) -> AsyncAPIResponse[Any]:
        connection = _CONNECTION.get()
        if request.retries_taken == 0 and connection is not None and connection.outlived:
            self._judge(connection, await connection.resolve())
        return await call_next(request)

    def handle(self, request: APIRequest, call_next: CallNext) -> APIResponse[Any]:
        connection = _CONNECTION.get()
        if request.retries_taken == 0 and connection is not None and connection.outlived:
            current: Principal | None
            try:  # a sync client in a worker thread of the event loop (a sync background task)
                current = anyio.from_thread.run(connection.resolve)
            except RuntimeError:
                log.error("claude_rbac: cannot ask the principal loader from this thread; denying the call")
                current = None
            self._judge(connection, current)
        return call_next(request)

    def _judge(self, connection: _Connection, current: Principal | None) -> None:
        if current == self._principal:
            return
        admission = (connection.scope.get("state") or {}).get(ADMISSION_STATE)
        if isinstance(admission, Admission):
            for guard in admission.guards:  # the guards' own answer for the principal signed in now, recorded
                self._rbac.require(current, guard.role, route=admission.route)
        if self._rbac.mode != "shadow":
            raise NotAuthenticated(message_for("unauthenticated"))
