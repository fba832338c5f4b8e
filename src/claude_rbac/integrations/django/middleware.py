"""``RBACMiddleware``: who is signed in (``request.principal``), their governed clients, and error bodies.

Sync and async capable with no adapter: Django hands it a sync or an async ``get_response`` and it
runs in that mode, loading the principal with the sync or the async loader.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction, sync_to_async

from ...errors import NotAuthenticated, RBACError
from ...policy import Principal
from .._kernel import Admission, aload_principal, load_principal
from .checks import validate_at_startup
from .clients import ADMISSION_ATTRIBUTE, bind_clients, error_response
from .resolvers import aprincipal_from_user, principal_from_user
from .runtime import get_config, get_rbac

__all__ = ["RBACMiddleware"]


def resolve_principal(request: Any) -> Principal | None:
    """The configured principal loader's answer; ``None`` when it fails (logged), so guards deny with a 401."""
    config = get_config()
    try:
        if config.loader is None:
            return load_principal(principal_from_user, request)
        if config.loader_is_async:
            return load_principal(async_to_sync(config.loader), request)
        return load_principal(config.loader, request)
    except NotAuthenticated:
        return None


async def aresolve_principal(request: Any) -> Principal | None:
    config = get_config()
    try:
        timeout = config.loader_timeout
        if config.loader is None:
            return await aload_principal(aprincipal_from_user, request, timeout=timeout)
        if config.loader_is_async:
            return await aload_principal(config.loader, request, timeout=timeout)
        return await aload_principal(sync_to_async(config.loader), request, timeout=timeout)
    except NotAuthenticated:
        return None


def _set_headers(response: Any, headers: list[tuple[str, str]]) -> None:
    for name, value in headers:
        if name not in response:
            response[name] = value


class RBACMiddleware:
    """Put it after ``AuthenticationMiddleware`` (system check ``claude_rbac.E005`` says so if not)."""

    sync_capable = True
    async_capable = True
    claude_rbac_middleware = True  # how the system checks recognise it (and subclasses) in MIDDLEWARE

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)
        validate_at_startup()  # configuration errors stop the app here, not at the first guarded request
        get_rbac()

    def __call__(self, request: Any) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        request.principal = resolve_principal(request)
        bind_clients(request, None)
        response = self.get_response(request)
        style = get_config().rate_limit_headers
        admission = getattr(request, ADMISSION_ATTRIBUTE, None)
        if style is not None and isinstance(admission, Admission):
            _set_headers(response, admission.rate_limit_headers(style))
        return response

    async def __acall__(self, request: Any) -> Any:
        request.principal = await aresolve_principal(request)
        bind_clients(request, None)
        response = await self.get_response(request)
        style = get_config().rate_limit_headers
        admission = getattr(request, ADMISSION_ATTRIBUTE, None)
        if style is not None and isinstance(admission, Admission):
            _set_headers(response, await admission.arate_limit_headers(style))
        return response

    def process_exception(self, request: Any, exception: Exception) -> Any:
        """A governed client's refusal (``RateLimited``, ``AccessDenied``...) becomes its Anthropic error body."""
        if isinstance(exception, RBACError):
            return error_response(exception)
        return None
