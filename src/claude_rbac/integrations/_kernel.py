"""What every framework adapter shares: loading the principal safely, the route guard, the error response.

Adapters stay thin by calling these; none of it knows a web framework.
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
from typing import Any, TypeAlias

from ..errors import NotAuthenticated, RBACError
from ..policy import Decision, Principal, Scope, as_patterns
from ..rbac import RBAC

__all__ = [
    "AsyncPrincipalLoader",
    "Guard",
    "PrincipalLoader",
    "aload_principal",
    "arate_limit_headers",
    "error_response",
    "load_principal",
    "rate_limit_headers",
]

log = logging.getLogger("claude_rbac")

PrincipalLoader: TypeAlias = Callable[..., "Principal | None"]
"""Returns the signed-in user from the app's own trusted identity (session, login user), or ``None``."""
AsyncPrincipalLoader: TypeAlias = Callable[..., "Awaitable[Principal | None] | Principal | None"]


def _loader_failed(loader: object) -> NotAuthenticated:
    name = getattr(loader, "__qualname__", type(loader).__name__)
    log.error("claude_rbac: principal loader %s raised; denying the request", name, exc_info=True)
    return NotAuthenticated("Could not establish who is signed in.")


def _checked(value: object, loader: object) -> Principal | None:
    if value is None or isinstance(value, Principal):
        return value
    name = getattr(loader, "__qualname__", type(loader).__name__)
    log.error(
        "claude_rbac: principal loader %s returned %s, not a Principal or None; denying",
        name,
        type(value).__name__,
    )
    raise NotAuthenticated("Could not establish who is signed in.")


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
        raise NotAuthenticated("Could not establish who is signed in.") from None
    except Exception:
        raise _loader_failed(loader) from None
    return _checked(value, loader)


@dataclass(frozen=True, slots=True)
class Guard:
    """One ``requires_role(...)`` declaration: the role a route needs and how it narrows that role."""

    role: str
    models: tuple[str, ...] | None = None
    max_tokens: int | None = None
    rpm: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.role, str) or not self.role:
            raise TypeError(f"requires_role() needs a role name, got {self.role!r}")
        Scope.build(models=self.models, max_tokens=self.max_tokens, rpm=self.rpm)  # validate at decoration

    @classmethod
    def declare(
        cls,
        role: str,
        *,
        models: Any = None,
        max_tokens: int | None = None,
        rpm: int | None = None,
        name: str | None = None,
    ) -> Guard:
        return cls(role, as_patterns(models), max_tokens, rpm, name)

    def scope(self, rbac: RBAC) -> Scope:
        return rbac.scope(models=self.models, max_tokens=self.max_tokens, rpm=self.rpm, name=self.name)

    def validate(self, rbac: RBAC) -> None:
        """Raise :class:`~claude_rbac.errors.PolicyError` when the policy has no such role."""
        rbac.validate_role(self.role)

    def check(self, rbac: RBAC, principal: Principal | None, route: str | None = None) -> Decision:
        """Record the decision and raise on a denial (unless the role is in shadow mode)."""
        return rbac.require(principal, self.role, route=route)


def error_response(error: RBACError) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and the Anthropic-shaped JSON body for an error."""
    body = json.dumps(error.to_dict()).encode("utf-8")
    headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
    headers.extend(error.headers.items())
    return error.status_code, headers, body


RATE_LIMIT_HEADER_STYLES = ("ietf", "x")


def rate_limit_headers(
    rbac: RBAC, principal: Principal | None, scope: Scope | None = None, style: str = "ietf"
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
    rbac: RBAC, principal: Principal | None, scope: Scope | None = None, style: str = "ietf"
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
