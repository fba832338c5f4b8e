"""``request.principal``: who is signed in, loaded at the first guard or view that asks, once per request.

Like Django's ``request.user``, the middleware only puts a lazy object on the request: a page no guard
protects, a 404 or a static file makes no query of ours. ``request.principal`` loads in sync code;
async code awaits ``request.aprincipal()`` (a guarded async view finds it already loaded).

``PRINCIPAL_LOADER_TIMEOUT`` cancels an ``async def`` loader that takes longer (the request counts as
signed out): a coroutine can be cancelled, a thread cannot. A sync loader, the default one included, runs
where Django runs the ORM, in the request's own thread (so it shares the request's database connection and
transaction, as ``request.user`` does, and Django's ``TestCase`` sees it), and is not timed: the database's
or the identity service's own timeouts bound it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.core.exceptions import ImproperlyConfigured, SynchronousOnlyOperation  # type: ignore[import-untyped]
from django.utils.functional import SimpleLazyObject  # type: ignore[import-untyped]

from ...errors import NotAuthenticated
from ...policy import Principal
from .._kernel import aload_principal, load_principal
from .resolvers import principal_from_user
from .runtime import get_config

__all__ = ["LazyPrincipal", "PrincipalSource", "aprincipal_of", "bind_principal", "principal_of"]

SOURCE_ATTRIBUTE = "claude_rbac_principal_source"
_MISSING: Any = object()


class LazyPrincipal(SimpleLazyObject):  # type: ignore[misc]
    """``request.principal``: the :class:`~claude_rbac.Principal`, or ``None`` when signed out, loaded on first use.

    It stands in for the value, as ``request.user`` does: ``if request.principal:``, ``request.principal.role``
    and ``request.principal == None`` work; ``is None`` cannot (use ``get_principal(request) is None``).
    """


class PrincipalSource:
    """Loads the request's principal once, with the configured loader, in sync or async code."""

    __slots__ = ("_loaded", "_request", "_value")

    def __init__(self, request: Any) -> None:
        self._request = request
        self._loaded = False
        self._value: Principal | None = None

    def get(self) -> Principal | None:
        if self._loaded:
            return self._value
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # sync code (a sync view, in WSGI or in an ASGI request's thread): load here
            return self._keep(self._load())
        raise SynchronousOnlyOperation(
            "request.principal would load the signed-in user and block the event loop: in async code use "
            "`principal = await request.aprincipal()` (a guarded async view finds it already loaded)."
        )

    async def aget(self) -> Principal | None:
        if self._loaded:
            return self._value
        return self._keep(await self._aload())

    def _keep(self, value: Principal | None) -> Principal | None:
        self._value, self._loaded = value, True
        return value

    def _load(self) -> Principal | None:
        config = get_config()
        loader = config.loader or principal_from_user
        try:
            if config.loader_is_async:
                return async_to_sync(aload_principal)(loader, self._request, timeout=config.loader_timeout)
            return load_principal(loader, self._request)
        except NotAuthenticated:
            return None

    async def _aload(self) -> Principal | None:
        config = get_config()
        loader = config.loader or principal_from_user
        try:
            if config.loader_is_async:
                return await aload_principal(loader, self._request, timeout=config.loader_timeout)
            # Thread-sensitive, like Django's own ORM calls from async code: the request's thread and connection.
            return await aload_principal(sync_to_async(loader), self._request)
        except NotAuthenticated:
            return None


def bind_principal(request: Any) -> None:
    """Put the lazy ``request.principal`` and ``request.aprincipal()`` on the request (the middleware does)."""
    source = PrincipalSource(request)
    setattr(request, SOURCE_ATTRIBUTE, source)
    request.principal = LazyPrincipal(source.get)
    request.aprincipal = source.aget


def _source_of(request: Any) -> PrincipalSource | Principal | None:
    value = getattr(request, "principal", _MISSING)
    source = getattr(request, SOURCE_ATTRIBUTE, None)
    if isinstance(value, LazyPrincipal) and isinstance(source, PrincipalSource):
        return source
    if value is None or isinstance(value, Principal):
        return value  # set by the app's own middleware after ours
    raise ImproperlyConfigured(
        "requires_role() needs 'claude_rbac.integrations.django.RBACMiddleware' in MIDDLEWARE "
        "(request.principal is missing or not a claude_rbac Principal)."
    )


def principal_of(request: Any) -> Principal | None:
    """The request's principal, loaded now if nobody asked yet (sync code)."""
    source = _source_of(request)
    return source.get() if isinstance(source, PrincipalSource) else source


async def aprincipal_of(request: Any) -> Principal | None:
    """The request's principal, loaded now if nobody asked yet (async code)."""
    source = _source_of(request)
    return await source.aget() if isinstance(source, PrincipalSource) else source
