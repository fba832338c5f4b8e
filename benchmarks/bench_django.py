"""A guarded Django view against the bare view, in-process WSGI (no sockets), in one run.

Two groups, each with its own bare baseline:

* ``django``: the principal comes from the session (a signed cookie, no database); the bare view reads
  the same session. This is claude_rbac's own overhead.
* ``django-auth``: Django's auth (``request.user`` from the database), as in the example app; the bare view reads
  ``request.user`` too, and the guarded one also pays the default resolver's one groups query (an ORM
  query costs about as much as loading the user; a ``role`` field on the user model needs none).

No OpenTelemetry SDK is installed, so spans cost what the API's no-op tracer costs.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import django
from django.conf import settings

from benchmarks import harness
from claude_rbac import Principal
from claude_rbac.integrations.django import principal_from_user

SESSION = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"
OURS = "claude_rbac.integrations.django.RBACMiddleware"
NOOP = "benchmarks.bench_django.NoopMiddleware"


class NoopMiddleware:
    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)


def principal(request: Any) -> Any:
    """The session's user (group ``django``), or the default resolver's answer (group ``django-auth``).

    One resolver for both groups, because all cases share one ``CLAUDE_RBAC``.
    """
    if hasattr(request, "user"):
        return principal_from_user(request)
    username = request.session.get("username")
    return Principal(id=username, role="user") if username else None


def _configure() -> None:
    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="benchmarks.bench_django",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "claude_rbac.integrations.django"],
        MIDDLEWARE=[SESSION, AUTH, OURS],
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
        CLAUDE_RBAC={
            "API_KEY": "benchmarks.bench_django.api_key",
            "BASE_URL": "http://127.0.0.1:9",
            "PRINCIPAL_LOADER": "benchmarks.bench_django.principal",
            "GROUP_ROLES": {"user": "user"},  # the default resolver grants only the groups mapped here
        },
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)


def api_key() -> str:
    return "sk-ant-benchmark-placeholder-0000000000"


# -- views and URLs (this module is the URLconf) -----------------------------------------------------


def _views() -> list[Any]:
    from django.http import JsonResponse
    from django.urls import path

    from claude_rbac.integrations.django import requires_role

    def bare(request: Any) -> Any:
        return JsonResponse({"user": request.session.get("username")})

    @requires_role("user")
    def guarded(request: Any) -> Any:
        return JsonResponse({"user": request.principal.id})

    def bare_auth(request: Any) -> Any:
        return JsonResponse({"user": request.user.get_username() if request.user.is_authenticated else None})

    @requires_role("user")
    def guarded_auth(request: Any) -> Any:
        return JsonResponse({"user": request.principal.id})

    return [
        path("bare", bare),
        path("guarded", guarded),
        path("auth/bare", bare_auth),
        path("auth/guarded", guarded_auth),
    ]


def __getattr__(name: str) -> Any:
    if name == "urlpatterns":  # built on first use, after settings are configured
        return _views()
    raise AttributeError(name)


# -- WSGI plumbing -----------------------------------------------------------------------------------


def _handler(middleware: list[str], **overrides: Any) -> Any:
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    with override_settings(MIDDLEWARE=middleware, **overrides):
        return WSGIHandler()


def _caller(handler: Any, path: str, cookie: str) -> Callable[[], tuple[str, bytes]]:
    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_COOKIE": cookie,
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        status.append(line)

    def call() -> tuple[str, bytes]:
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO()
        response = handler(environ, start_response)
        body = b"".join(response)
        response.close()
        return status.pop(), body

    return call


def _looper(call: Callable[[], object]) -> Callable[[int], object]:
    def run(n: int) -> None:
        for _ in range(n):
            call()

    return run


def _expect(call: Callable[[], tuple[str, bytes]], status: str, needle: bytes) -> Callable[[], None]:
    def check() -> None:
        line, body = call()
        assert line.startswith(status), (line, body)
        assert needle in body, body

    return check


def _both(*checks: Callable[[], None]) -> Callable[[], None]:
    def check() -> None:
        for one in checks:
            one()

    return check


def _session_cookie(**data: Any) -> str:
    from django.contrib.sessions.backends.signed_cookies import SessionStore

    store = SessionStore()
    store.update(data)
    store.save()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def cases() -> list[harness.Case]:
    _configure()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import Group, User

    cookie = _session_cookie(username="uma")
    bare = _caller(_handler([SESSION]), "/bare", cookie)
    noop = _caller(_handler([SESSION, NOOP]), "/bare", cookie)
    guarded = _caller(_handler([SESSION, OURS]), "/guarded", cookie)
    guarded_anonymous = _caller(_handler([SESSION, OURS]), "/guarded", "")

    user, _ = User.objects.get_or_create(username="uma")
    user.groups.add(Group.objects.get_or_create(name="user")[0])
    auth_cookie = _session_cookie(
        **{
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
    )
    bare_auth = _caller(_handler([SESSION, AUTH]), "/auth/bare", auth_cookie)
    guarded_auth = _caller(_handler([SESSION, AUTH, OURS]), "/auth/guarded", auth_cookie)
    guarded_auth_anonymous = _caller(_handler([SESSION, AUTH, OURS]), "/auth/guarded", "")
    return [
        harness.Case("django", "bare view (session)", _looper(bare), _expect(bare, "200", b'"uma"')),
        harness.Case("django", "bare + no-op middleware", _looper(noop), _expect(noop, "200", b'"uma"')),
        harness.Case(
            "django",
            "requires_role('user') + RBACMiddleware",
            _looper(guarded),
            _both(_expect(guarded, "200", b'"uma"'), _expect(guarded_anonymous, "401", b"unauthenticated")),
        ),
        harness.Case(
            "django-auth", "bare view (request.user)", _looper(bare_auth), _expect(bare_auth, "200", b'"uma"')
        ),
        harness.Case(
            "django-auth",
            "requires_role('user'), role from groups",
            _looper(guarded_auth),
            _both(
                _expect(guarded_auth, "200", str(user.pk).encode()),
                _expect(guarded_auth_anonymous, "401", b"unauthenticated"),
            ),
        ),
    ]


if __name__ == "__main__":
    results = harness.measure(cases())
    for group in dict.fromkeys(result.group for result in results):
        print(f"\n{group}\n")
        print(harness.table([result for result in results if result.group == group]))
