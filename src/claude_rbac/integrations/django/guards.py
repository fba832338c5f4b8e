"""Route guards: ``requires_role(...)`` for function views and ``RoleRequiredMixin`` for class-based views.

Both check at declaration time what they can (a bad ``models``/``max_tokens``/``rpm`` raises ``PolicyError``
at import); the system check ``claude_rbac.E004`` reports a role the policy lacks. A denial answers with
the Anthropic-shaped JSON error (401 or 403) and the view never runs; an allowed request gets
``request.claude`` / ``request.aclaude()`` narrowed to the guard's scope.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, ClassVar, TypeVar

from asgiref.sync import iscoroutinefunction
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]

from ...errors import RBACError
from ...policy import Principal
from .._kernel import GUARD_ATTRIBUTE, Admission, Guard
from .clients import ADMISSION_ATTRIBUTE, bind_clients, error_response, route_of
from .runtime import get_rbac

__all__ = ["GUARD_ATTRIBUTE", "RoleRequiredMixin", "guard_request", "requires_role"]

View = TypeVar("View", bound=Callable[..., Any])
_MISSING: Any = object()


def guard_request(guard: Guard, request: Any) -> Any | None:
    """``None`` when the request may go on (its clients now narrowed), else the error response."""
    principal = getattr(request, "principal", _MISSING)
    if principal is not None and not isinstance(principal, Principal):
        raise ImproperlyConfigured(
            "requires_role() needs 'claude_rbac.integrations.django.RBACMiddleware' in MIDDLEWARE "
            "(request.principal is missing or not a claude_rbac Principal)."
        )
    previous = getattr(request, ADMISSION_ATTRIBUTE, None)
    try:
        admission = guard.admit(
            get_rbac(), principal, route_of(request), previous if isinstance(previous, Admission) else None
        )
    except RBACError as exc:
        return error_response(exc)
    bind_clients(request, admission)
    return None


def requires_role(
    role: str,
    *,
    models: Iterable[str] | str | None = None,
    max_tokens: int | None = None,
    rpm: int | None = None,
    name: str | None = None,
) -> Callable[[View], View]:
    """Let the view run only for ``role`` or a role that inherits it; sync and async views alike.

    ``models``, ``max_tokens`` and ``rpm`` narrow what the view's governed client may do (never widen);
    ``name`` labels the route's own RPM bucket. Works on methods through
    ``django.utils.decorators.method_decorator``; several guards on one request intersect.
    """
    guard = Guard.declare(role, models=models, max_tokens=max_tokens, rpm=rpm, name=name)

    def decorator(view: View) -> View:
        if iscoroutinefunction(view):

            @wraps(view)
            async def guarded_async(request: Any, *args: Any, **kwargs: Any) -> Any:
                denied = guard_request(guard, request)
                if denied is not None:
                    return denied
                return await view(request, *args, **kwargs)

            setattr(guarded_async, GUARD_ATTRIBUTE, guard)
            return guarded_async  # type: ignore[return-value]

        @wraps(view)
        def guarded(request: Any, *args: Any, **kwargs: Any) -> Any:
            denied = guard_request(guard, request)
            if denied is not None:
                return denied
            return view(request, *args, **kwargs)

        setattr(guarded, GUARD_ATTRIBUTE, guard)
        return guarded  # type: ignore[return-value]

    return decorator


class RoleRequiredMixin:
    """For class-based views: ``class Report(RoleRequiredMixin, View): required_role = "power"``.

    ``claude_models``, ``claude_max_tokens``, ``claude_rpm`` and ``claude_name`` narrow the view's client
    like ``requires_role``'s keywords. Put the mixin before ``View`` in the bases.
    """

    required_role: ClassVar[str | None] = None
    claude_models: ClassVar[Iterable[str] | str | None] = None
    claude_max_tokens: ClassVar[int | None] = None
    claude_rpm: ClassVar[int | None] = None
    claude_name: ClassVar[str | None] = None
    __claude_rbac_guard__: ClassVar[Guard | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        guard = None
        if cls.required_role is not None:
            guard = Guard.declare(
                cls.required_role,
                models=cls.claude_models,
                max_tokens=cls.claude_max_tokens,
                rpm=cls.claude_rpm,
                name=cls.claude_name,
            )
        setattr(cls, GUARD_ATTRIBUTE, guard)

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        guard = getattr(self, GUARD_ATTRIBUTE)
        if guard is None:
            raise ImproperlyConfigured(f"{type(self).__qualname__} is missing the required_role attribute.")
        denied = guard_request(guard, request)
        if denied is None:
            parent: Any = super()
            return parent.dispatch(request, *args, **kwargs)
        if getattr(self, "view_is_async", False):

            async def answer() -> Any:
                return denied

            return answer()
        return denied
