"""``RBACMiddleware``: a lazy ``request.principal``, the request's governed clients, and error bodies.

Sync and async capable with no adapter: Django hands it a sync or an async ``get_response`` and it runs in
that mode. It loads nothing itself: the principal loads at the first guard (or view) that asks for it, so
unguarded pages and 404s make no query of ours (see :mod:`.principals`).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from ...errors import RBACError
from .._kernel import Admission
from .checks import validate_at_startup
from .clients import ADMISSION_ATTRIBUTE, bind_clients, error_response
from .principals import bind_principal
from .runtime import get_config, get_rbac

__all__ = ["RBACMiddleware"]


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
        bind_principal(request)
        bind_clients(request, None)
        response = self.get_response(request)
        style = get_config().rate_limit_headers
        admission = getattr(request, ADMISSION_ATTRIBUTE, None)
        if style is not None and isinstance(admission, Admission):
            _set_headers(response, admission.rate_limit_headers(style))
        return response

    async def __acall__(self, request: Any) -> Any:
        bind_principal(request)
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
