"""What the middleware and the guards put on a request: ``request.claude``, ``request.aclaude`` and errors.

``request.claude`` is the governed sync ``anthropic.Anthropic``, built on first use. In an async view it
would block the event loop, so using it there raises ``SynchronousOnlyOperation`` (as Django's ORM does);
async views ``await request.aclaude()`` for the governed ``anthropic.AsyncAnthropic``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
from django.core.exceptions import SynchronousOnlyOperation  # type: ignore[import-untyped]
from django.http import JsonResponse  # type: ignore[import-untyped]

from ...errors import RBACError
from ...policy import Principal, Scope
from ...rbac import RBAC

__all__ = ["LazyClaude", "bind_clients", "error_response", "route_of"]


def error_response(error: RBACError) -> Any:
    """The Anthropic-shaped JSON error, with its status and headers (``Retry-After`` on a 429)."""
    return JsonResponse(error.to_dict(), status=error.status_code, headers=error.headers)


def route_of(request: Any) -> str | None:
    """The matched URL pattern (``api/chat/<int:pk>``): low-cardinality, unlike the path."""
    match = getattr(request, "resolver_match", None)
    return (match.route or None) if match is not None else None


class LazyClaude:
    """``request.claude``: stands in for the governed ``anthropic.Anthropic`` and builds it on first use.

    Attribute access goes to the client, and ``isinstance(request.claude, anthropic.Anthropic)`` holds, like
    Django's ``SimpleLazyObject`` but with one small object per request (this is on every request's path).
    """

    __slots__ = ("_client", "_guarded", "_principal", "_rbac", "_request", "_scope")

    def __init__(
        self, rbac: RBAC, principal: Principal | None, scope: Scope | None, request: Any, *, guarded: bool
    ) -> None:
        self._rbac = rbac
        self._principal = principal
        self._scope = scope
        self._request = request
        self._guarded = guarded
        self._client: anthropic.Anthropic | None = None

    def _require_guard(self) -> None:
        if not self._guarded:
            raise RuntimeError(
                "request.claude / request.aclaude() are only available in a view guarded by requires_role() "
                "or RoleRequiredMixin: no view reaches Claude unguarded"
            )

    def _get(self) -> anthropic.Anthropic:
        client = self._client
        if client is None:
            self._require_guard()
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                client = self._client = self._rbac.client(
                    self._principal, scope=self._scope, route=route_of(self._request)
                )
            else:
                raise SynchronousOnlyOperation(
                    "request.claude is the sync Anthropic client and would block the event loop: "
                    "in an async view use `claude = await request.aclaude()`."
                )
        return client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._get())

    def __repr__(self) -> str:
        return f"<LazyClaude principal={self._principal!r} scope={self._scope.name if self._scope else ''!r}>"

    async def aclient(self) -> anthropic.AsyncAnthropic:
        """``await request.aclaude()``: the governed ``anthropic.AsyncAnthropic`` for the same principal and scope."""
        self._require_guard()
        return self._rbac.async_client(self._principal, scope=self._scope, route=route_of(self._request))


def bind_clients(
    request: Any, rbac: RBAC, principal: Principal | None, scope: Scope | None = None, *, guarded: bool = True
) -> None:
    """Give the request its lazy governed clients, narrowed to ``scope`` (a route guard's).

    The middleware binds unguarded ones, which raise when used; a guard that admits the request
    rebinds them, so only a guarded view can reach Claude.
    """
    claude = LazyClaude(rbac, principal, scope, request, guarded=guarded)
    request.claude = claude
    request.aclaude = claude.aclient
