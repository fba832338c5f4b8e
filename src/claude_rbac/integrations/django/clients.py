"""What the middleware and the guards put on a request: ``request.claude``, ``request.aclaude`` and errors.

``request.claude`` is the governed sync ``anthropic.Anthropic``, built on first use. In an async view it
would block the event loop, so using it there raises ``SynchronousOnlyOperation`` (as Django's ORM does);
async views ``await request.aclaude()`` for the governed ``anthropic.AsyncAnthropic``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
from django.core.exceptions import ImproperlyConfigured, SynchronousOnlyOperation  # type: ignore[import-untyped]
from django.http import HttpResponse  # type: ignore[import-untyped]

from ...errors import RBACError
from ...policy import Principal
from .._kernel import NOT_ADMITTED, Admission
from .._kernel import error_response as render_error
from .principals import principal_of

__all__ = [
    "ADMISSION_ATTRIBUTE",
    "LazyClaude",
    "bind_clients",
    "error_response",
    "get_claude",
    "get_principal",
    "route_of",
]

ADMISSION_ATTRIBUTE = "claude_rbac_admission"
"""The request attribute holding the :class:`~claude_rbac.integrations.Admission` its guards left."""


def error_response(error: RBACError) -> Any:
    """The Anthropic-shaped JSON error, with its status and headers (``Retry-After`` on a 429)."""
    status, headers, body = render_error(error)
    response = HttpResponse(body, status=status)
    for name, value in headers:
        response[name] = value
    return response


def route_of(request: Any) -> str | None:
    """The matched URL pattern (``api/chat/<int:pk>``): low-cardinality, unlike the path."""
    match = getattr(request, "resolver_match", None)
    return (match.route or None) if match is not None else None


class LazyClaude:
    """``request.claude``: stands in for the governed ``anthropic.Anthropic`` and builds it on first use.

    Attribute access goes to the client, and ``isinstance(request.claude, anthropic.Anthropic)`` holds, like
    Django's ``SimpleLazyObject`` but with one small object per request (this is on every request's path).
    """

    __slots__ = ("_admission", "_client")

    def __init__(self, admission: Admission | None) -> None:
        self._admission = admission
        self._client: anthropic.Anthropic | None = None

    def _admitted(self) -> Admission:
        if self._admission is None:
            raise RuntimeError(
                "request.claude / request.aclaude() are only available in a view guarded by requires_role() "
                "or RoleRequiredMixin: no view reaches Claude unguarded"
            )
        return self._admission

    def _get(self) -> anthropic.Anthropic:
        client = self._client
        if client is None:
            admission = self._admitted()
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                client = self._client = admission.client()
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
        admission = self._admission
        if admission is None:
            return "<LazyClaude (no guard admitted this request)>"
        return f"<LazyClaude principal={admission.principal!r} scope={admission.scope.name!r}>"

    async def aclient(self) -> anthropic.AsyncAnthropic:
        """``await request.aclaude()``: the governed ``anthropic.AsyncAnthropic`` for the same principal and scope."""
        return self._admitted().async_client()


def bind_clients(request: Any, admission: Admission | None) -> None:
    """Give the request its lazy governed clients, from the admission its guards left.

    The middleware binds unguarded ones (``None``), which raise when used; a guard that admits the request
    rebinds them, so only a guarded view can reach Claude.
    """
    setattr(request, ADMISSION_ATTRIBUTE, admission)
    claude = LazyClaude(admission)
    request.claude = claude
    request.aclaude = claude.aclient


def get_claude(request: Any) -> anthropic.Anthropic:
    """The governed sync client of a request a guard admitted (``request.claude`` is the same client)."""
    admission = getattr(request, ADMISSION_ATTRIBUTE, None)
    if not isinstance(admission, Admission):
        raise RuntimeError(NOT_ADMITTED)
    return admission.client()


def get_principal(request: Any) -> Principal | None:
    """The request's signed-in :class:`~claude_rbac.Principal` or ``None``, loaded now if nobody asked yet.

    The value behind the lazy ``request.principal`` (so ``get_principal(request) is None`` works); in async
    code, ``await request.aprincipal()``. ``None`` as well when ``RBACMiddleware`` is not installed.
    """
    try:
        return principal_of(request)
    except ImproperlyConfigured:
        return None
