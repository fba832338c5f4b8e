"""What every framework adapter shares: the route guard, the admission it leaves, loading the principal
safely, and the one Anthropic-shaped error response. None of it knows a web framework.

The vocabulary is the same in all six adapters: a ``principal_loader`` says who is signed in,
``requires_role(role, *, models=, max_tokens=, rpm=, name=, tools=, mcp_servers=, service_tiers=, speeds=,
inference_geos=, betas=)`` declares a :class:`Guard`, a guard that lets
a request in leaves an :class:`Admission` where the framework keeps per-request state, and
``get_claude`` / ``get_principal`` read it back.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

import anthropic
from typing_extensions import Unpack

from ..errors import NotAuthenticated, RBACError, message_for
from ..policy import Narrowing, Principal, Scope
from ..rbac import RBAC

__all__ = [
    "GUARD_ATTRIBUTE",
    "NOT_ADMITTED",
    "RATE_LIMIT_STYLES",
    "Admission",
    "AsyncPrincipalLoader",
    "Guard",
    "PrincipalLoader",
    "RateLimitStyle",
    "aload_principal",
    "arate_limit_headers",
    "check_rate_limit_style",
    "error_response",
    "load_principal",
    "rate_limit_headers",
]

log = logging.getLogger("claude_rbac")

PrincipalLoader: TypeAlias = Callable[..., "Principal | None"]
"""Returns the signed-in user from the app's own trusted identity (session, login user), or ``None``."""
AsyncPrincipalLoader: TypeAlias = Callable[..., "Awaitable[Principal | None] | Principal | None"]
RateLimitStyle = Literal["ietf", "x"]
RATE_LIMIT_STYLES: Final = ("ietf", "x")

GUARD_ATTRIBUTE: Final = "__claude_rbac_guard__"
"""Set on every guarded view, endpoint and dependency, so startup checks can find each guard's role."""


# -- the guard and its admission ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Guard:
    """One ``requires_role(...)`` declaration: the role a route needs and the scope it narrows that role to.

    The scope is built and validated once, here, when the route is declared.
    """

    role: str
    scope: Scope

    @classmethod
    def declare(
        cls,
        role: str,
        **narrowing: Unpack[Narrowing],
    ) -> Guard:
        """A guard; ``TypeError`` for a missing role, ``PolicyError`` for a bad narrowing (at decoration time).

        The keywords are :class:`~claude_rbac.policy.Narrowing`'s; every adapter hands its own on unread."""
        if not isinstance(role, str) or not role:
            raise TypeError(f"requires_role() needs a role name, got {role!r}")
        scope = Scope.build(**narrowing)
        return cls(role, scope)

    def validate(self, rbac: RBAC) -> None:
        """Raise :class:`~claude_rbac.errors.PolicyError` when the policy has no such role."""
        rbac.validate_role(self.role)

    def admit(
        self, rbac: RBAC, principal: Principal | None, route: str | None, previous: Admission | None = None
    ) -> Admission:
        """Record the decision and raise on a denial (unless the role is in shadow mode); the admission.

        A request an earlier guard admitted (a router's, a blueprint's) is narrowed by this one too: scopes
        intersect, so a later guard can narrow a request further but never widen it.
        """
        rbac.require(principal, self.role, route=route)
        if previous is not None and previous.rbac is rbac and previous.principal == principal:
            return Admission(rbac, principal, previous.scope.intersect(self.scope), route, (*previous.guards, self))
        return Admission(rbac, principal, self.scope, route, (self,))


@dataclass(frozen=True, slots=True)
class Admission:
    """A request the route guards let in: for whom, narrowed to what, on which route.

    Every adapter stores one per request where its framework keeps request state (the WSGI environ,
    ``scope["state"]``, the Django request) and builds the governed client from it.
    """

    rbac: RBAC
    principal: Principal | None
    scope: Scope
    """The intersection of the scopes of every guard that let the request in."""
    route: str | None
    guards: tuple[Guard, ...] = ()
    """The guards that let the request in, outermost first."""

    def client(self) -> anthropic.Anthropic:
        return self.rbac.client(self.principal, scope=self.scope, route=self.route)

    def async_client(self) -> anthropic.AsyncAnthropic:
        return self.rbac.async_client(self.principal, scope=self.scope, route=self.route)

    def rate_limit_headers(self, style: RateLimitStyle) -> list[tuple[str, str]]:
        return rate_limit_headers(self.rbac, self.principal, self.scope, style)

    async def arate_limit_headers(self, style: RateLimitStyle) -> list[tuple[str, str]]:
        return await arate_limit_headers(self.rbac, self.principal, self.scope, style)


NOT_ADMITTED: Final = (
    "No claude_rbac guard admitted this request: guard the route with requires_role(...) "
    "before asking for its Claude client (get_claude(), current_claude(), request.claude)."
)


# -- the principal ------------------------------------------------------------------------------------


def _loader_failed(loader: object) -> NotAuthenticated:
    name = getattr(loader, "__qualname__", type(loader).__name__)
    log.error("claude_rbac: principal loader %s raised; denying the request", name, exc_info=True)
    return NotAuthenticated(message_for("unauthenticated", "loader"))


def _checked(value: object, loader: object) -> Principal | None:
    if value is None or isinstance(value, Principal):
        return value
    name = getattr(loader, "__qualname__", type(loader).__name__)
    log.error(
        "claude_rbac: principal loader %s returned %s, not a Principal or None; denying",
        name,
        type(value).__name__,
    )
    raise NotAuthenticated(message_for("unauthenticated", "loader"))


def load_principal(loader: PrincipalLoader, *args: Any) -> Principal | None:
    """Call a sync loader. A loader that raises, or returns something else, denies (401), never allows."""
    try:
        value = loader(*args)
    except Exception:
        raise _loader_failed(loader) from None
    return _checked(value, loader)


async def aload_principal(loader: AsyncPrincipalLoader, *args: Any, timeout: float | None = None) -> Principal | None:
    """Call a sync or async loader, with the same fail-closed rules as :func:`load_principal`.

    An async loader that takes longer than ``timeout`` seconds is cancelled and counts as a loader that
    raised: nobody is signed in (the identity store hung; the request must not hang with it).
    """
    try:
        value = loader(*args)
        if inspect.isawaitable(value):
            value = await (asyncio.wait_for(value, timeout) if timeout is not None else value)
    except asyncio.TimeoutError:
        name = getattr(loader, "__qualname__", type(loader).__name__)
        log.error("claude_rbac: principal loader %s took longer than %s s; denying the request", name, timeout)
        raise NotAuthenticated(message_for("unauthenticated", "loader")) from None
    except Exception:
        raise _loader_failed(loader) from None
    return _checked(value, loader)


# -- responses ----------------------------------------------------------------------------------------


def error_response(error: RBACError) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and the Anthropic-shaped JSON body for an error: the one renderer every adapter uses."""
    body = json.dumps(error.to_dict()).encode("utf-8")
    headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
    headers.extend(error.headers.items())
    return error.status_code, headers, body


def check_rate_limit_style(value: object, setting: str) -> RateLimitStyle | None:
    """``None``, ``"ietf"`` or ``"x"``; ``ValueError`` naming ``setting`` otherwise (at startup)."""
    if value is None or value in RATE_LIMIT_STYLES:
        return value
    raise ValueError(f"{setting} must be 'ietf', 'x' or None, got {value!r}")


def rate_limit_headers(
    rbac: RBAC, principal: Principal | None, scope: Scope | None = None, style: RateLimitStyle = "ietf"
) -> list[tuple[str, str]]:
    """``RateLimit-Limit/Remaining/Reset`` (IETF draft) or ``X-RateLimit-*`` for the tightest request bucket.

    Opt-in on guarded routes: it reads the storage once more per request. Empty when the principal
    has no RPM limit or the storage cannot answer (a header is never worth failing a request over).
    """
    try:
        return _rate_headers(rbac.rate_limits(principal, scope=scope), style)
    except Exception:
        return []


async def arate_limit_headers(
    rbac: RBAC, principal: Principal | None, scope: Scope | None = None, style: RateLimitStyle = "ietf"
) -> list[tuple[str, str]]:
    """:func:`rate_limit_headers` for async code: the storage is read through ``limits.aio``."""
    try:
        return _rate_headers(await rbac.arate_limits(principal, scope=scope), style)
    except Exception:
        return []


def _rate_headers(buckets: list[dict[str, Any]], style: str) -> list[tuple[str, str]]:
    if not buckets:
        return []
    tightest = min(buckets, key=lambda bucket: bucket["remaining"])
    reset = max(0, math.ceil(tightest["reset"] - time.time()))
    prefix = "RateLimit" if style == "ietf" else "X-RateLimit"
    return [
        (f"{prefix}-Limit", str(tightest["limit"])),
        (f"{prefix}-Remaining", str(tightest["remaining"])),
        (f"{prefix}-Reset", str(reset)),
    ]
