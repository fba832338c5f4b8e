"""Flask: the ``ClaudeRBAC`` extension, the ``requires_role`` view decorator and ``current_claude()``.

    ClaudeRBAC(app, principal_loader=load_user)      # or ClaudeRBAC(...).init_app(app) in a factory

    @app.post("/chat")
    @requires_role("user")
    def chat():
        return current_claude().messages.create(...).to_dict()

It builds on :mod:`claude_rbac.integrations.wsgi`: the principal and the guard a request passed live
in the WSGI environ under the same keys, the path rules and :func:`get_claude` are the same, so an
``RBACMiddleware`` around ``app.wsgi_app`` and this extension compose.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, cast

from flask import Flask, Response, current_app, has_app_context, request, request_started
from flask.testing import FlaskClient
from flask.views import View
from typing_extensions import Unpack
from werkzeug.exceptions import HTTPException, InternalServerError, default_exceptions

from ..errors import PolicyError, RBACError
from ..policy import Narrowing, Principal
from ..rbac import RBAC
from ._flask_bodies import cut_at_denial, explain_late_denials
from ._flask_config import CONFIG_KEYS, DefaultPrincipalLoader, OnDenied, RoleLoader, read_settings
from ._kernel import GUARD_ATTRIBUTE, Admission, Guard, PrincipalLoader, RateLimitStyle, error_response
from .wsgi import ADMISSION_KEY, PRINCIPAL_KEY, PathRules, admit, get_admission, load_principal_or_none

if TYPE_CHECKING:
    import anthropic
    from _typeshed.wsgi import WSGIEnvironment
    from flask.typing import ResponseReturnValue
    from werkzeug.datastructures import Headers

__all__ = [
    "CONFIG_KEYS",
    "ClaudeRBAC",
    "DefaultPrincipalLoader",
    "RBACTestClient",
    "current_claude",
    "current_principal",
    "current_rbac",
    "get_claude",
    "get_principal",
    "json_error",
    "requires_role",
]

EXTENSION_KEY: Final = "claude_rbac"
_STATE_KEY: Final = "claude_rbac.state"
_LOADED_HERE: Final = "claude_rbac.flask.loaded"
"""Environ flag: the extension loaded the principal (an outer layer did not put it there)."""
_AT_VIEW: Final = "claude_rbac.flask.at_view"
"""Environ flag: the principal was loaded at the view, after the app's ``before_request`` hooks."""

ViewT = TypeVar("ViewT", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class AppState:
    """What one app's requests need; kept in ``app.extensions``, never on the extension."""

    rbac: RBAC
    principal_loader: PrincipalLoader
    on_denied: OnDenied | Literal["json", "abort"]
    rules: PathRules
    rate_limit_headers: RateLimitStyle | None


class ClaudeRBAC:
    """The Flask extension. Constructor arguments win over the app's ``CLAUDE_RBAC_*`` config keys.

    * ``rbac``: an :class:`~claude_rbac.RBAC`; without one, ``init_app`` builds one per app from
      ``CLAUDE_RBAC_POLICY`` (file path, dict or Policy; default: the built-in roles),
      ``CLAUDE_RBAC_STORAGE`` (default ``memory://``), ``CLAUDE_RBAC_KEY_PREFIX``,
      ``CLAUDE_RBAC_API_KEY`` or ``CLAUDE_RBAC_API_KEY_ENV`` (default: the SDK's ``ANTHROPIC_API_KEY``),
      ``CLAUDE_RBAC_BASE_URL`` and ``CLAUDE_RBAC_MODE``.
    * ``principal_loader()``: returns the signed-in :class:`~claude_rbac.Principal` or ``None``; default
      :class:`DefaultPrincipalLoader` (``CLAUDE_RBAC_ROLE_ATTRIBUTE``, ``CLAUDE_RBAC_SESSION_USER_KEY``).
    * ``role_loader(user_id)`` (``CLAUDE_RBAC_ROLE_LOADER``): the default loader's role, from the app's user
      store; never from the session, whose cookie the client keeps.
    * ``on_denied`` (``CLAUDE_RBAC_ON_DENIED``): ``"json"`` (the Anthropic-shaped error body), ``"abort"``
      (the app's own ``errorhandler(403)`` pages) or a callable ``(error) -> response``.
    * ``rules`` (``CLAUDE_RBAC_RULES``): path rules such as ``{"/admin/*": "admin"}``.
    * ``rate_limit_headers`` (``CLAUDE_RBAC_RATE_LIMIT_HEADERS``): ``"ietf"`` or ``"x"`` on guarded routes.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        rbac: RBAC | None = None,
        principal_loader: PrincipalLoader | None = None,
        on_denied: OnDenied | Literal["json", "abort"] | None = None,
        rules: Mapping[str, str] | None = None,
        rate_limit_headers: RateLimitStyle | None = None,
        role_loader: RoleLoader | None = None,
    ) -> None:
        self._rbac = rbac
        self._principal_loader = principal_loader
        self._role_loader = role_loader
        self._on_denied = on_denied
        self._rules = rules
        self._rate_limit_headers = rate_limit_headers
        if app is not None:
            self.init_app(app)

    @property
    def rbac(self) -> RBAC:
        """The RBAC of the current app (inside an app context), else the one given to the constructor."""
        if has_app_context() and _STATE_KEY in current_app.extensions:
            return _state().rbac
        if self._rbac is None:
            raise RuntimeError("ClaudeRBAC builds its RBAC per app: ask inside an app context")
        return self._rbac

    def init_app(self, app: Flask) -> None:
        """Configure ``app``; raises :class:`~claude_rbac.PolicyError` for a guard or rule naming an unknown role,
        and ``ValueError`` for a ``CLAUDE_RBAC_*`` key it does not know (a typo must not be ignored)."""
        settings = read_settings(
            app.config,
            rbac=self._rbac,
            principal_loader=self._principal_loader,
            role_loader=self._role_loader,
            on_denied=self._on_denied,
            rules=self._rules,
            rate_limit_headers=self._rate_limit_headers,
        )
        rbac = settings.rbac
        state = AppState(
            rbac, settings.principal_loader, settings.on_denied, PathRules(settings.rules), settings.rate_limit_headers
        )
        state.rules.validate(rbac)
        _validate_views(app, rbac)
        first_time = _STATE_KEY not in app.extensions
        app.extensions[EXTENSION_KEY] = self
        app.extensions[_STATE_KEY] = state
        if not first_time:
            return
        # Routes added after init_app are checked on the first request; Flask refuses new routes after it.
        request_started.connect(_validate_on_first_request, sender=app)
        if state.rules:
            app.before_request(_enforce_rules)
        if state.rate_limit_headers:
            app.after_request(_add_rate_limit_headers)
        app.after_request(explain_late_denials)
        if app.test_client_class is None:  # app.test_client() then behaves as a server does (see RBACTestClient)
            app.test_client_class = RBACTestClient
        if RBACError not in app.error_handler_spec[None][None]:
            # An errorhandler(RBACError) the app registered, before or after this, wins over ours.
            app.register_error_handler(RBACError, _handle_error)


def _state() -> AppState:
    try:
        return cast(AppState, current_app.extensions[_STATE_KEY])
    except KeyError:
        raise RuntimeError("ClaudeRBAC is not set up on this app: call ClaudeRBAC(app) or init_app(app)") from None


def _guards_of(view: Callable[..., Any]) -> list[Guard]:
    guards = [getattr(view, GUARD_ATTRIBUTE)] if hasattr(view, GUARD_ATTRIBUTE) else []
    view_class = getattr(view, "view_class", None)
    if view_class is not None:  # method-level guards of a MethodView
        for method in getattr(view_class, "methods", None) or ():
            handler = getattr(view_class, method.lower(), None)
            if handler is not None and hasattr(handler, GUARD_ATTRIBUTE):
                guards.append(getattr(handler, GUARD_ATTRIBUTE))
    return guards


def _validate_views(app: Flask, rbac: RBAC) -> None:
    for view in app.view_functions.values():
        for guard in _guards_of(view):
            guard.validate(rbac)


# -- per request ------------------------------------------------------------------------------------


def _principal(state: AppState, environ: dict[str, Any]) -> Principal | None:
    """The request's principal: loaded on first use, or put in the environ by RBACMiddleware / RBACTestClient."""
    if PRINCIPAL_KEY in environ:
        value = environ[PRINCIPAL_KEY]
        return value if isinstance(value, Principal) else None
    principal = load_principal_or_none(state.principal_loader)
    environ[PRINCIPAL_KEY] = principal
    environ[_LOADED_HERE] = True
    return principal


def _principal_at_view(state: AppState, environ: dict[str, Any]) -> Principal | None:
    """The principal a view guard or ``current_claude()`` acts on: as it is after the app's own hooks.

    Path rules run as a ``before_request`` hook, possibly before the app's own (which may sign a user out,
    or end an impersonation). So at the view the principal is loaded once more; when it is not the one the
    rules admitted, the rules judge the new one (a fresh admission: nothing the old one was granted survives).
    A principal an outer layer put in the environ is fixed for the request, and is not loaded again.
    """
    if environ.get(_AT_VIEW) or (PRINCIPAL_KEY in environ and not environ.get(_LOADED_HERE)):
        return _principal(state, environ)
    principal = load_principal_or_none(state.principal_loader)
    environ[PRINCIPAL_KEY] = principal
    environ[_LOADED_HERE] = environ[_AT_VIEW] = True
    admission = environ.get(ADMISSION_KEY)
    if isinstance(admission, Admission) and admission.principal != principal:
        del environ[ADMISSION_KEY]
        for pattern, guard in state.rules.matching(request.path):
            admit(environ, state.rbac, guard, principal, pattern)
    return principal


def _validate_on_first_request(app: Flask, **_: object) -> None:
    _validate_views(app, app.extensions[_STATE_KEY].rbac)  # a PolicyError fails the request, and the next
    request_started.disconnect(_validate_on_first_request, sender=app)


def _enforce_rules() -> None:
    state = _state()
    environ = request.environ
    matching = list(state.rules.matching(request.path))
    if matching:
        # When no hook of the app runs after this one, the principal it loads is the view's: load it once.
        principal = _principal_at_view(state, environ) if _runs_last() else _principal(state, environ)
        for pattern, guard in matching:
            admit(environ, state.rbac, guard, principal, pattern)


def _runs_last() -> bool:
    """Whether the path rules' hook is the last ``before_request`` hook of this request (Flask runs the app's
    hooks in the order registered, then those of the request's blueprints): nothing then runs before the view."""
    hooks = current_app.before_request_funcs
    if any(hooks.get(name) for name in request.blueprints):
        return False
    own: list[Any] = hooks.get(None) or []
    return bool(own) and own[-1] is _enforce_rules


def _add_rate_limit_headers(response: Response) -> Response:
    admission = request.environ.get(ADMISSION_KEY)
    style = _state().rate_limit_headers
    if isinstance(admission, Admission) and style:
        for name, value in admission.rate_limit_headers(style):
            response.headers.setdefault(name, value)
    return response


def json_error(error: RBACError) -> Response:
    """The Anthropic-shaped JSON error response (``Retry-After`` on a 429), e.g. for an ``on_denied`` fallback."""
    status, headers, body = error_response(error)
    return current_app.response_class(body, status=status, headers=headers)


def _handle_error(error: RBACError) -> ResponseReturnValue:
    if isinstance(error, PolicyError):
        raise error  # a misconfiguration: let Flask log it and answer 500
    on_denied = _state().on_denied
    if on_denied == "json":
        return json_error(error)
    if on_denied == "abort":
        exception_class = default_exceptions.get(error.status_code, InternalServerError)
        exception: HTTPException = exception_class(description=error.message)
        response = current_app.make_response(current_app.handle_http_exception(exception))
        for name, value in error.headers.items():
            response.headers.setdefault(name, value)
        return response
    return on_denied(error)


# -- public helpers ---------------------------------------------------------------------------------


def requires_role(
    role: str,
    **narrowing: Unpack[Narrowing],
) -> Callable[[ViewT], ViewT]:
    """Guard a view: 401 when nobody is signed in, 403 below ``role`` (``"user"`` admits power and admin).

    ``models``, ``max_tokens``, ``rpm`` and the request-field grants (``tools``... ``betas``) narrow what
    :func:`current_claude` allows on this route; they never widen the role; ``name`` labels the route's own
    RPM bucket. Works on sync and async views, blueprint routes, ``View``/``MethodView`` classes (decorate
    the class, or list it in ``decorators``) and their methods; several guards on one request intersect.
    """
    guard = Guard.declare(role, **narrowing)

    def decorator(view: ViewT) -> ViewT:
        if isinstance(view, type):
            if not issubclass(view, View):
                raise TypeError(f"requires_role() decorates views and View classes, not {view.__name__}")
            view.decorators = [*view.decorators, decorator]
            return cast(ViewT, view)
        if hasattr(view, GUARD_ATTRIBUTE):
            raise TypeError(f"{view.__qualname__} already has a requires_role(); give it one, with the role it needs")
        is_async = inspect.iscoroutinefunction(view)

        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            state = _state()
            environ = request.environ
            rule = request.url_rule
            principal = _principal_at_view(state, environ)
            admit(environ, state.rbac, guard, principal, rule.rule if rule else request.path)
            if is_async:
                return current_app.ensure_sync(view)(*args, **kwargs)
            return view(*args, **kwargs)

        setattr(guarded, GUARD_ATTRIBUTE, guard)
        return cast(ViewT, guarded)

    return decorator


def current_claude() -> anthropic.Anthropic:
    """The governed client for this request and this route's scope, built on first use.

    Raises ``RuntimeError`` outside a guarded route, so no route reaches Claude unguarded. In an async
    view use it too: Flask runs each async view in an event loop of its own. ``get_claude()`` is the
    same function under the name the other integrations use. On a route only a path rule guards, the
    principal is checked once more here, after the app's ``before_request`` hooks (see the view guard).
    """
    environ = request.environ
    if _STATE_KEY in current_app.extensions:  # else a plain RBACMiddleware admitted it: nothing to re-check
        _principal_at_view(_state(), environ)
    return get_admission(environ).client()


def current_principal() -> Principal | None:
    """The signed-in principal of this request, or ``None``; on any route, guarded or not.

    Loaded on first use and kept for the request; a guarded view sees the one its guard loaded after the
    app's ``before_request`` hooks.
    """
    return _principal(_state(), request.environ)


get_claude = current_claude
get_principal = current_principal


def current_rbac() -> RBAC:
    """The :class:`~claude_rbac.RBAC` serving the current app."""
    return _state().rbac


class RBACTestClient(FlaskClient):
    """A test client that behaves as a server does, optionally signed in as ``principal``.

    ``app.test_client(principal=Principal("uma", "user"))`` is signed in as that principal, like Flask-Login's
    ``FlaskLoginClient``. ``init_app`` makes it the app's ``test_client_class`` unless the app chose one.
    A refusal raised inside a streamed body, after the response started, ends the body there (the server
    cuts the connection; the client has a 200 and what was sent before) instead of raising into the test.
    """

    def __init__(self, *args: Any, principal: Principal | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if principal is not None:
            environ_base: dict[str, Any] = self.environ_base
            environ_base[PRINCIPAL_KEY] = principal

    def run_wsgi_app(self, environ: WSGIEnvironment, buffered: bool = False) -> tuple[Iterable[bytes], str, Headers]:
        body, status, headers = super().run_wsgi_app(environ, buffered=buffered)
        return cut_at_denial(body), status, headers
