"""Route guards: ``requires_role(...)`` for function views and ``RoleRequiredMixin`` for class-based views.

Both check at declaration time what they can (a bad ``models``/``max_tokens``/``rpm`` raises ``PolicyError``
at import); the system check ``claude_rbac.E004`` reports a role the policy lacks. A denial answers with
the Anthropic-shaped JSON error (401 or 403) and the view never runs; an allowed request gets
``request.claude`` / ``request.aclaude()`` narrowed to the guard's scope. The guard is what loads the
request's principal (``request.principal`` is lazy), in async views without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable
from functools import partial, wraps
from typing import Any, ClassVar, TypeVar

from asgiref.sync import iscoroutinefunction
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.views import View as DjangoView  # type: ignore[import-untyped]
from typing_extensions import Unpack

from ...errors import RBACError
from ...policy import Narrowing, Principal
from .._kernel import GUARD_ATTRIBUTE, Admission, Guard
from .clients import ADMISSION_ATTRIBUTE, bind_clients, error_response, route_of
from .principals import aprincipal_of, principal_of
from .runtime import get_rbac

__all__ = ["GUARD_ATTRIBUTE", "RoleRequiredMixin", "aguard_request", "guard_request", "requires_role"]

View = TypeVar("View", bound=Callable[..., Any])
GUARDED_DISPATCH = "__claude_rbac_guarded_dispatch__"
"""Marks the ``dispatch`` :class:`RoleRequiredMixin` installs on a class whose ``View`` comes before it."""


def _admit(guard: Guard, request: Any, principal: Principal | None) -> Any | None:
    previous = getattr(request, ADMISSION_ATTRIBUTE, None)
    if not isinstance(previous, Admission):
        previous = None
    elif any(admitted is guard for admitted in previous.guards):
        return None  # this very guard already let the request in (a mixin reached twice through dispatch)
    try:
        admission = guard.admit(get_rbac(), principal, route_of(request), previous)
    except RBACError as exc:
        return error_response(exc)
    bind_clients(request, admission)
    return None


def guard_request(guard: Guard, request: Any) -> Any | None:
    """``None`` when the request may go on (its clients now narrowed), else the error response (sync code)."""
    return _admit(guard, request, principal_of(request))


async def aguard_request(guard: Guard, request: Any) -> Any | None:
    """:func:`guard_request` for async code: the principal loads without blocking the event loop."""
    return _admit(guard, request, await aprincipal_of(request))


def _called_from_event_loop() -> bool:
    """True when a sync callable runs on the event loop's own thread: Django then awaits what it returns.

    That is an async class-based view's ``dispatch`` (``method_decorator(..., name="dispatch")``): Django
    runs every other sync view in a thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _guarded_call(guard: Guard, view: Callable[..., Any], request: Any, args: Any, kwargs: Any) -> Any:
    denied = await aguard_request(guard, request)
    if denied is not None:
        return denied
    result = view(request, *args, **kwargs)
    return await result if inspect.isawaitable(result) else result


def requires_role(
    role: str,
    **narrowing: Unpack[Narrowing],
) -> Callable[[View], View]:
    """Let the view run only for ``role`` or a role that inherits it; sync and async views alike.

    ``models``, ``max_tokens``, ``rpm`` and the request-field grants (``tools``... ``betas``) narrow what the
    view's governed client may do (never widen);
    ``name`` labels the route's own RPM bucket. Works on methods through
    ``django.utils.decorators.method_decorator``, ``dispatch`` of an async class-based view included;
    several guards on one request intersect.
    """
    guard = Guard.declare(role, **narrowing)

    def decorator(view: View) -> View:
        if iscoroutinefunction(view):

            @wraps(view)
            async def guarded_async(request: Any, *args: Any, **kwargs: Any) -> Any:
                return await _guarded_call(guard, view, request, args, kwargs)

            setattr(guarded_async, GUARD_ATTRIBUTE, guard)
            return guarded_async  # type: ignore[return-value]

        @wraps(view)
        def guarded(request: Any, *args: Any, **kwargs: Any) -> Any:
            if _called_from_event_loop():
                return _guarded_call(guard, view, request, args, kwargs)
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
    like ``requires_role``'s keywords. It guards in either order of the bases: put after ``View`` (whose
    ``dispatch`` never calls on), it wraps the class's ``dispatch`` instead of relying on being reached.
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
        if _view_comes_first(cls) and not getattr(cls.dispatch, GUARDED_DISPATCH, False):
            cls.dispatch = _guarding(cls.dispatch)  # type: ignore[method-assign]

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        parent: Any = super()
        return self._claude_rbac_dispatch(request, args, kwargs, parent.dispatch)

    def _claude_rbac_dispatch(self, request: Any, args: Any, kwargs: Any, proceed: Callable[..., Any]) -> Any:
        guard = getattr(self, GUARD_ATTRIBUTE)
        if guard is None:
            raise ImproperlyConfigured(f"{type(self).__qualname__} is missing the required_role attribute.")
        if getattr(self, "view_is_async", False):  # Django awaits what an async view's dispatch returns
            return _guarded_call(guard, proceed, request, args, kwargs)
        denied = guard_request(guard, request)
        return denied if denied is not None else proceed(request, *args, **kwargs)


def _view_comes_first(cls: type) -> bool:
    """``class X(View, RoleRequiredMixin)``: ``View.dispatch`` is found first and never reaches the mixin's."""
    mro = cls.__mro__
    return DjangoView in mro and mro.index(DjangoView) < mro.index(RoleRequiredMixin)


def _guarding(dispatch: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(dispatch)
    def guarded_dispatch(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        return RoleRequiredMixin._claude_rbac_dispatch(self, request, args, kwargs, partial(dispatch, self))

    setattr(guarded_dispatch, GUARDED_DISPATCH, True)
    return guarded_dispatch
