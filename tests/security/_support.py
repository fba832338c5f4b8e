"""The security suite's one JSON API, served by every integration, and one way to call it.

Every example app exposes the same API (``POST /login``, ``GET /api/me``, ``POST /api/chat`` for users,
``POST /api/long`` for power users on opus, ``GET /admin`` for admins). The Flask, FastAPI and Django
examples serve it themselves; for the framework-free WSGI and ASGI middlewares and for Starlette, a
"mirror" app below serves the same API the way an app author would, through the integration's public
API only. Tests that need what an example cannot take (a principal loader of their own) use the
mirror of that framework too; Django's "mirror" is its example with another ``PRINCIPAL_LOADER``.
The Django example signs its users in with ``django.contrib.auth``: here its demo users and groups live in
the Django test project's database while a test serves it.

:func:`serve` yields a :class:`Target`: an ``httpx.Client`` on the app (WSGI through
``httpx.WSGITransport``, ASGI through Starlette's ``TestClient``, which runs the lifespan), plus what the
tests need to forge that integration's own session cookie.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Annotated, Any
from urllib.parse import parse_qs

import anthropic
import httpx
import itsdangerous
from anthropic import AsyncAnthropic
from examples.common import DEFAULT_POLICY, role_of
from fastapi import Depends, FastAPI, Request
from flask import Flask, session
from flask.sessions import SecureCookieSessionInterface
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from claude_rbac import RBAC, NotAuthenticated, Principal
from claude_rbac.integrations import asgi as asgi_rbac
from claude_rbac.integrations import fastapi as fastapi_rbac
from claude_rbac.integrations import flask as flask_rbac
from claude_rbac.integrations import starlette as starlette_rbac
from claude_rbac.integrations import wsgi as wsgi_rbac
from claude_rbac.testing import FakeClaude

HAIKU, OPUS = "claude-haiku-4-5", "claude-opus-4-7"
KEY = "sk-ant-api03-security-suite-000000000000000000000000000000-SEC"
"""A placeholder key (FakeClaude ignores it); error bodies must never show it."""
MIRROR_SECRET = "security-suite-session-secret"
MIRROR_SALT = "claude-rbac-security-session"
INTEGRATIONS = ("wsgi", "flask", "asgi", "starlette", "fastapi", "django")
USER_MAX_TOKENS = 512
"""The user role's cap in examples/rbac.toml."""

Loader = Callable[..., Any]


def make_rbac(fake: FakeClaude, **options: Any) -> RBAC:
    """An RBAC on the examples' policy (viewer < user < power < admin) whose calls go to ``fake``."""
    return RBAC(DEFAULT_POLICY, api_key=KEY, base_url=fake.url, **options)


def principal_named(username: object) -> Principal | None:
    """The app's own user directory: the role is looked up on the server, never read from the request."""
    role = role_of(username)
    return Principal(str(username), role) if role is not None else None


def api_key() -> str:
    """The Django settings' key source (``CLAUDE_RBAC["API_KEY"]``)."""
    return KEY


def parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    """A JSON object or a urlencoded form, as the examples accept both."""
    if content_type.startswith("application/json"):
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return {name: values[0] for name, values in parse_qs(raw.decode("utf-8", "replace")).items()}


def chat_arguments(body: Mapping[str, Any], model: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": body.get("model") or model,
        "max_tokens": body.get("max_tokens", max_tokens),
        "messages": [{"role": "user", "content": str(body.get("prompt") or "hi")}],
    }


def answer(message: anthropic.types.Message) -> dict[str, Any]:
    return {"text": message.content[0].text if message.content else "", "model": message.model}


# -- the framework-free mirrors' session: a signed cookie that holds the username --------------------


def mirror_sign(data: Mapping[str, Any], secret: str) -> str:
    return str(itsdangerous.URLSafeTimedSerializer(secret, salt=MIRROR_SALT).dumps(dict(data)))


def mirror_session_header(username: str) -> str:
    return f"session={mirror_sign({'username': username}, MIRROR_SECRET)}; Path=/; HttpOnly"


def principal_from_cookie_header(header: str) -> Principal | None:
    cookie = SimpleCookie()
    cookie.load(header)
    if "session" not in cookie:
        return None
    serializer = itsdangerous.URLSafeTimedSerializer(MIRROR_SECRET, salt=MIRROR_SALT)
    try:
        data = serializer.loads(cookie["session"].value, max_age=3600)
    except itsdangerous.BadData:
        return None
    return principal_named(data.get("username")) if isinstance(data, dict) else None


def wsgi_session_loader(environ: Mapping[str, Any]) -> Principal | None:
    return principal_from_cookie_header(environ.get("HTTP_COOKIE", ""))


def asgi_session_loader(scope: Mapping[str, Any]) -> Principal | None:
    header = "; ".join(value.decode("latin-1") for name, value in scope["headers"] if name == b"cookie")
    return principal_from_cookie_header(header)


# -- mirrors --------------------------------------------------------------------------------------

WSGI_RULES = {"/api/chat": "user", "/api/long": "power", "/admin/*": "admin"}


def wsgi_app(rbac: RBAC, loader: Loader | None = None) -> Any:
    """A plain WSGI app behind ``wsgi.RBACMiddleware``: path rules guard it, ``get_claude(environ)`` asks Claude."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = parse_body(environ["wsgi.input"].read(length), environ.get("CONTENT_TYPE", ""))
        headers: list[tuple[str, str]] = []
        if (method, path) == ("POST", "/login"):
            principal = principal_named(body.get("username"))
            if principal is None:
                raise NotAuthenticated("Unknown user.")
            headers.append(("Set-Cookie", mirror_session_header(principal.id)))
            result: Any = {"user": principal.id, "role": principal.role}
        elif path == "/api/me":
            principal = wsgi_rbac.get_principal(environ)
            if principal is None:
                raise NotAuthenticated("Sign in first.")
            result = {"user": principal.id, "role": principal.role}
        elif (method, path) == ("POST", "/api/chat"):
            result = answer(wsgi_rbac.get_claude(environ).messages.create(**chat_arguments(body, HAIKU, 512)))
        elif (method, path) == ("POST", "/api/long"):
            result = answer(wsgi_rbac.get_claude(environ).messages.create(**chat_arguments(body, OPUS, 4096)))
        elif path == "/admin":
            start_response("200 OK", [("Content-Type", "text/html")])
            return [b"<h1>admin</h1>"]
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        start_response("200 OK", [("Content-Type", "application/json"), *headers])
        return [json.dumps(result).encode()]

    return wsgi_rbac.RBACMiddleware(app, rbac=rbac, principal_loader=loader or wsgi_session_loader, rules=WSGI_RULES)


def flask_session_loader() -> Principal | None:
    return principal_named(session.get("username"))


def flask_app(rbac: RBAC, loader: Loader | None = None) -> Flask:
    """The Flask mirror: ``ClaudeRBAC``, ``requires_role`` and ``current_claude()``."""
    from flask import request

    app = Flask("security_mirror")
    app.secret_key = MIRROR_SECRET
    app.testing = True
    flask_rbac.ClaudeRBAC(app, rbac=rbac, principal_loader=loader or flask_session_loader)

    def form() -> dict[str, Any]:
        return parse_body(request.get_data(), request.content_type or "")

    @app.post("/login")
    def login() -> Any:
        principal = principal_named(form().get("username"))
        if principal is None:
            raise NotAuthenticated("Unknown user.")
        session["username"] = principal.id
        return {"user": principal.id, "role": principal.role}

    @app.get("/api/me")
    def me() -> Any:
        principal = flask_rbac.current_principal()
        if principal is None:
            raise NotAuthenticated("Sign in first.")
        return {"user": principal.id, "role": principal.role}

    @app.post("/api/chat")
    @flask_rbac.requires_role("user")
    def chat() -> Any:
        return answer(flask_rbac.current_claude().messages.create(**chat_arguments(form(), HAIKU, 512)))

    @app.post("/api/long")
    @flask_rbac.requires_role("power", models=["claude-opus-*"])
    def long_answer() -> Any:
        return answer(flask_rbac.current_claude().messages.create(**chat_arguments(form(), OPUS, 4096)))

    @app.get("/admin")
    @flask_rbac.requires_role("admin")
    def admin() -> str:
        return "<h1>admin</h1>"

    return app


ASGI_GUARDS: Mapping[str, tuple[str, tuple[str, ...] | None]] = {
    "/api/chat": ("user", None),
    "/api/long": ("power", ("claude-opus-*",)),
    "/admin": ("admin", None),
}


async def _read_body(receive: Callable[[], Awaitable[Mapping[str, Any]]]) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send_json(send: Callable[..., Awaitable[None]], data: Any, *extra: tuple[bytes, bytes]) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), *extra]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def asgi_app(rbac: RBAC, loader: Loader | None = None, loader_timeout: float | None = 5.0) -> Any:
    """A raw ASGI app behind ``asgi.RBACMiddleware``: it calls ``rbac.require`` and ``rbac.async_client`` itself."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await rbac.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path, method = scope["path"], scope["method"]
        headers = dict(scope["headers"])
        body = parse_body(await _read_body(receive), headers.get(b"content-type", b"").decode("latin-1"))
        governing, principal = asgi_rbac.rbac_of(scope), asgi_rbac.principal_of(scope)
        assert governing is rbac
        if path in ASGI_GUARDS:
            role, models = ASGI_GUARDS[path]
            rbac.require(principal, role, route=path)  # the route guard; the middleware answers its errors
            if path == "/admin":
                await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
                await send({"type": "http.response.body", "body": b"<h1>admin</h1>"})
                return
            claude = rbac.async_client(principal, scope=rbac.scope(models=models), route=path)
            defaults = (HAIKU, 512) if path == "/api/chat" else (OPUS, 4096)
            await _send_json(send, answer(await claude.messages.create(**chat_arguments(body, *defaults))))
        elif (method, path) == ("POST", "/login"):
            principal = principal_named(body.get("username"))
            if principal is None:
                raise NotAuthenticated("Unknown user.")
            cookie = mirror_session_header(principal.id).encode()
            await _send_json(send, {"user": principal.id, "role": principal.role}, (b"set-cookie", cookie))
        elif path == "/api/me":
            if principal is None:
                raise NotAuthenticated("Sign in first.")
            await _send_json(send, {"user": principal.id, "role": principal.role})
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    return asgi_rbac.RBACMiddleware(
        app, rbac=rbac, principal_loader=loader or asgi_session_loader, loader_timeout=loader_timeout
    )


def starlette_session_loader(connection: HTTPConnection) -> Principal | None:
    return principal_named(connection.session.get("username"))


def closing_lifespan(rbac: RBAC) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """Close the RBAC's connection pools inside the loop that opened them, when the app stops."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        await rbac.aclose()

    return lifespan


async def _form(request: Request) -> dict[str, Any]:
    return parse_body(await request.body(), request.headers.get("content-type", ""))


async def _login(request: Request) -> Response:
    principal = principal_named((await _form(request)).get("username"))
    if principal is None:
        raise NotAuthenticated("Unknown user.")
    request.session["username"] = principal.id
    return JSONResponse({"user": principal.id, "role": principal.role})


async def _me(request: Request) -> Response:
    principal = starlette_rbac.get_principal(request)
    if principal is None:
        raise NotAuthenticated("Sign in first.")
    return JSONResponse({"user": principal.id, "role": principal.role})


@starlette_rbac.requires_role("user")
async def _starlette_chat(request: Request) -> Response:
    claude = starlette_rbac.get_claude(request)
    return JSONResponse(answer(await claude.messages.create(**chat_arguments(await _form(request), HAIKU, 512))))


@starlette_rbac.requires_role("power", models=["claude-opus-*"])
async def _starlette_long(request: Request) -> Response:
    claude = starlette_rbac.get_claude(request)
    return JSONResponse(answer(await claude.messages.create(**chat_arguments(await _form(request), OPUS, 4096))))


@starlette_rbac.requires_role("admin")
async def _starlette_admin(request: Request) -> Response:
    return HTMLResponse("<h1>admin</h1>")


def starlette_app(rbac: RBAC, loader: Loader | None = None, loader_timeout: float | None = 5.0) -> Starlette:
    """The Starlette mirror: ``RBACMiddleware``, ``requires_role`` and ``get_claude(request)``."""
    return Starlette(
        routes=[
            Route("/login", _login, methods=["POST"]),
            Route("/api/me", _me),
            Route("/api/chat", _starlette_chat, methods=["POST"]),
            Route("/api/long", _starlette_long, methods=["POST"]),
            Route("/admin", _starlette_admin),
        ],
        middleware=[
            Middleware(SessionMiddleware, secret_key=MIRROR_SECRET),
            Middleware(
                starlette_rbac.RBACMiddleware,
                rbac=rbac,
                principal_loader=loader or starlette_session_loader,
                loader_timeout=loader_timeout,
            ),
        ],
        lifespan=closing_lifespan(rbac),
    )


UserClaude = Annotated[AsyncAnthropic, Depends(fastapi_rbac.requires_role("user"))]
LongClaude = Annotated[AsyncAnthropic, Depends(fastapi_rbac.requires_role("power", models=["claude-opus-*"]))]


def fastapi_app(rbac: RBAC, loader: Loader | None = None, loader_timeout: float | None = 5.0) -> FastAPI:
    """The FastAPI mirror: the ``requires_role`` dependency yields the governed ``AsyncAnthropic``."""
    app = FastAPI(lifespan=closing_lifespan(rbac))
    app.add_middleware(
        fastapi_rbac.RBACMiddleware,
        rbac=rbac,
        principal_loader=loader or starlette_session_loader,
        loader_timeout=loader_timeout,
    )
    app.add_middleware(SessionMiddleware, secret_key=MIRROR_SECRET)
    app.add_api_route("/login", _login, methods=["POST"])
    app.add_api_route("/api/me", _me)

    @app.post("/api/chat")
    async def chat(request: Request, claude: UserClaude) -> Any:
        return answer(await claude.messages.create(**chat_arguments(await _form(request), HAIKU, 512)))

    @app.post("/api/long")
    async def long_answer(request: Request, claude: LongClaude) -> Any:
        return answer(await claude.messages.create(**chat_arguments(await _form(request), OPUS, 4096)))

    @app.get("/admin", dependencies=[Depends(fastapi_rbac.requires_role("admin"))])
    async def admin() -> Response:
        return HTMLResponse("<h1>admin</h1>")

    return app


# -- Django: the example's URLs and views, under settings of the test's own -----------------------------

DJANGO_SALT = "django.contrib.sessions.backends.signed_cookies"


def django_project() -> None:
    """Configure Django once per process, the way tests/integrations/django does (so both suites share it)."""
    from tests.integrations.django import project

    project.configure()


@contextlib.contextmanager
def django_settings(
    fake: FakeClaude,
    *,
    resolver: Loader | str | None = None,
    storage: str = "memory://",
    key_prefix: str = "claude_rbac",
    options: Mapping[str, Any] | None = None,
    resolver_timeout: float | None = 5.0,
) -> Iterator[str]:
    """The Django example's URLs, middleware, signed-cookie sessions and ``GROUP_ROLES``, with its demo users
    in the database; yields the SECRET_KEY. ``resolver`` replaces the built-in principal loader."""
    django_project()
    from django.test import override_settings
    from examples.common import SECRET_KEY
    from examples.django_app import demo_users

    from claude_rbac.integrations.django import runtime

    claude_rbac = {
        "POLICY": str(DEFAULT_POLICY),
        "STORAGE": storage,
        "KEY_PREFIX": key_prefix,
        "GROUP_ROLES": demo_users.GROUP_ROLES,
        "PRINCIPAL_LOADER_TIMEOUT": resolver_timeout,
        "API_KEY": api_key,
        "BASE_URL": fake.url,
        "OPTIONS": dict(options or {}),
    }
    if resolver is not None:
        claude_rbac["PRINCIPAL_LOADER"] = resolver
    with override_settings(
        ROOT_URLCONF="examples.django_app.urls",
        SECRET_KEY=SECRET_KEY,
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "claude_rbac.integrations.django.RBACMiddleware",
        ],
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        CLAUDE_RBAC=claude_rbac,
    ):
        demo_users.create_demo_users()
        try:
            yield SECRET_KEY
        finally:
            demo_users.delete_demo_users()
            if runtime._rbac is not None:  # the RBAC built from these settings; the override drops it
                runtime._rbac.close()


# -- forging each framework's own session cookie ----------------------------------------------------


def flask_sign(data: Mapping[str, Any], secret: str) -> str:
    forger = Flask("forger")
    forger.secret_key = secret
    serializer = SecureCookieSessionInterface().get_signing_serializer(forger)
    assert serializer is not None
    return str(serializer.dumps(dict(data)))


def starlette_sign(data: Mapping[str, Any], secret: str) -> str:
    payload = base64.b64encode(json.dumps(dict(data)).encode())
    return itsdangerous.TimestampSigner(secret).sign(payload).decode()


def django_sign(data: Mapping[str, Any], secret: str) -> str:
    """Django's signed-cookie session. A ``username`` becomes what ``django.contrib.auth.login()`` writes for
    that demo user (its id, backend and session hash); any other key (a ``role``) stays, for the app to ignore."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.core import signing
    from examples.django_app.demo_users import demo_user

    session = dict(data)
    if "username" in session:
        user = demo_user(session.pop("username"))
        assert user is not None, "only the demo users can be forged"
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    return signing.dumps(session, key=secret, salt=DJANGO_SALT, serializer=signing.JSONSerializer, compress=True)


# -- calling any of them alike -----------------------------------------------------------------------


@dataclass
class Target:
    """One integration serving the shared API, and how to forge its session cookie."""

    name: str
    http: httpx.Client
    fake: FakeClaude
    session_cookie: str
    secret: str
    sign: Callable[[Mapping[str, Any], str], str]

    def send(
        self, method: str, url: str, *, cookies: Mapping[str, str] | None = None, **options: Any
    ) -> httpx.Response:
        """One request carrying exactly ``cookies`` (the client's jar holds nothing between requests)."""
        self.http.cookies.clear()
        for name, value in (cookies or {}).items():
            self.http.cookies.set(name, value)
        try:
            return self.http.request(method, url, **options)
        finally:
            self.http.cookies.clear()

    def login(
        self, username: str, *, cookies: Mapping[str, str] | None = None, **options: Any
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """Sign in through ``POST /login``: the session cookie the app set, and what it answered."""
        if "json" not in options and "data" not in options:
            options["json"] = {"username": username}
        response = self.send("POST", "/login", cookies=cookies, **options)
        assert response.status_code == 200, response.text
        session = {self.session_cookie: response.cookies[self.session_cookie]}
        return session, response.json()

    def whoami(self, cookies: Mapping[str, str] | None = None, **options: Any) -> tuple[str | None, str | None]:
        response = self.send("GET", "/api/me", cookies=cookies, **options)
        if response.status_code == 401:
            return None, None
        assert response.status_code == 200, response.text
        data = response.json()
        return data["user"], data["role"]


@contextlib.contextmanager
def _wsgi_client(app: Any) -> Iterator[httpx.Client]:
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://testserver") as client:
        yield client


def _app_for(name: str, rbac: RBAC, loader: Loader | None) -> tuple[Any, str, Callable[[Mapping[str, Any], str], str]]:
    """The app serving the shared API with ``rbac``, its session secret, and how to forge its session cookie."""
    if name == "wsgi":
        return wsgi_app(rbac, loader), MIRROR_SECRET, mirror_sign
    if name == "asgi":
        return asgi_app(rbac, loader), MIRROR_SECRET, mirror_sign
    if name == "starlette":
        return starlette_app(rbac, loader), MIRROR_SECRET, starlette_sign
    if name == "flask" and loader is None:
        from examples.flask_app import create_app

        example = create_app(rbac)
        example.testing = True
        return example, str(example.secret_key), flask_sign
    if name == "flask":
        return flask_app(rbac, loader), MIRROR_SECRET, flask_sign
    if name == "fastapi" and loader is None:
        from examples.fastapi_app import application

        return application.create_app(rbac), application.SECRET_KEY, starlette_sign
    if name == "fastapi":
        return fastapi_app(rbac, loader), MIRROR_SECRET, starlette_sign
    raise ValueError(f"no integration named {name!r}")


@contextlib.contextmanager
def serve(
    name: str,
    fake: FakeClaude,
    *,
    loader: Loader | None = None,
    storage: str = "memory://",
    key_prefix: str = "claude_rbac",
    revoked: Callable[[], Iterable[str]] | None = None,
) -> Iterator[Target]:
    """Serve the shared API with integration ``name``: its example app, unless ``loader`` asks for the mirror."""
    options: dict[str, Any] = {"revoked": revoked} if revoked is not None else {}
    if name == "django":
        from django.core.handlers.wsgi import WSGIHandler

        resolver = {"resolver": loader} if loader is not None else {}
        with (
            django_settings(fake, storage=storage, key_prefix=key_prefix, options=options, **resolver) as secret,
            _wsgi_client(WSGIHandler()) as http,
        ):
            yield Target(name, http, fake, "sessionid", secret, django_sign)
        return
    rbac = make_rbac(fake, storage=storage, key_prefix=key_prefix, **options)
    app, secret, sign = _app_for(name, rbac, loader)
    if name in ("wsgi", "flask"):
        try:
            with _wsgi_client(app) as http:
                yield Target(name, http, fake, "session", secret, sign)
        finally:
            rbac.close()
        return
    with TestClient(app, base_url="http://testserver") as http:  # its lifespan closes the RBAC's pools
        yield Target(name, http, fake, "session", secret, sign)


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The Anthropic error envelope of a refusal, checked for its shape."""
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"type", "error"}, body
    assert body["type"] == "error"
    assert set(body["error"]) == {"type", "message", "error_code"}, body
    return dict(body["error"])
