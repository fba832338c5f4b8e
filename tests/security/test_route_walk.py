"""Route walk: in every framework, each route that uses the Claude client is guarded.

The walk reads each example app's own URL map (Flask's ``url_map``, FastAPI's ``app.routes`` with its
mounts and included routers, Django's URL resolver), finds the guards by the integrations' own markers
(the attribute ``requires_role`` puts on a view or dependency, ``RoleRequiredMixin``, path rules), and
finds Claude use by reading each view's code (and the code of the helpers and dependencies it calls) for
the client accessors: ``current_claude()``, ``get_claude()``, ``request.claude``, ``request.aclaude()``,
``rbac.client(...)``/``async_client(...)``, the FastAPI guard dependency, or an anthropic client made
outside the governor. Throwaway apps with a hole in them show that the walk finds the hole, and that
calling the client outside a guard raises.
"""

from __future__ import annotations

import functools
import inspect
import json
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import pytest
from anthropic import AsyncAnthropic
from django.http import JsonResponse
from django.urls import get_resolver, include, path
from django.utils.decorators import method_decorator
from django.views import View as DjangoView
from examples.common import DEFAULT_POLICY
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from flask import Blueprint, Flask
from flask.views import MethodView
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Host, Mount, Route

from claude_rbac import RBAC, Policy, Principal
from claude_rbac.integrations import GUARD_ATTRIBUTE, Guard
from claude_rbac.integrations import fastapi as fastapi_rbac
from claude_rbac.integrations import flask as flask_rbac
from claude_rbac.integrations import starlette as starlette_rbac
from claude_rbac.integrations import wsgi as wsgi_rbac
from claude_rbac.integrations.django import RoleRequiredMixin
from claude_rbac.integrations.django import guards as django_guards
from claude_rbac.testing import FakeClaude

from ._support import HAIKU, Target, closing_lifespan, django_project, error_of, make_rbac, serve

CLAUDE_ACCESSORS = frozenset({"current_claude", "get_claude", "claude", "aclaude", "async_client"})
"""Names whose use in a view's code means it talks to Claude through an integration or the RBAC."""
RBAC_NAMES = frozenset({"rbac", "current_rbac", "get_rbac", "rbac_of"})
"""With one of these in sight, ``.client`` is ``RBAC.client``."""
UNGOVERNED = frozenset({"Anthropic", "AsyncAnthropic"})
"""An anthropic client made in a view: nothing governs it."""
FRAMEWORKS = ("flask.", "django.", "starlette.", "fastapi.", "claude_rbac.")
"""Code the walk does not read: the frameworks' and claude_rbac's own (their guards are found by marker)."""
POLICY = Policy.from_file(DEFAULT_POLICY)
SHARED_CLAUDE_ROUTES = {"/api/chat", "/api/long", "/api/chat/stream"}
"""The shared example API's Claude routes: the walk must see Claude use there, or it proves nothing."""


@dataclass
class Usage:
    """What a view's code does with Claude: through the governed accessors, or around them."""

    accessors: set[str] = field(default_factory=set)
    ungoverned: set[str] = field(default_factory=set)

    def __ior__(self, other: Usage) -> Usage:
        self.accessors |= other.accessors
        self.ungoverned |= other.ungoverned
        return self


@dataclass
class WalkedRoute:
    path: str
    methods: frozenset[str]
    view: str
    usage: Usage
    guards: list[Guard]

    @property
    def uses_claude(self) -> bool:
        return bool(self.usage.accessors or self.usage.ungoverned)

    def __repr__(self) -> str:
        roles = [guard.role for guard in self.guards]
        return f"<{'|'.join(sorted(self.methods))} {self.path} {self.view} uses={sorted(self.usage.accessors)} {roles}>"


# -- reading code -----------------------------------------------------------------------------------


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _cells(func: types.FunctionType) -> dict[str, Any]:
    cells = {}
    for name, cell in zip(func.__code__.co_freevars, func.__closure__ or (), strict=True):
        try:
            cells[name] = cell.cell_contents
        except ValueError:  # a cell not filled yet
            continue
    return cells


def _function(obj: object) -> types.FunctionType | None:
    """The plain function behind a view: unwrapped from decorators, bound methods, partials and ``__call__``."""
    obj = inspect.unwrap(obj)  # type: ignore[arg-type]
    while isinstance(obj, functools.partial):
        obj = obj.func
    obj = getattr(obj, "__func__", obj)
    if not isinstance(obj, types.FunctionType) and callable(obj) and not inspect.isclass(obj):
        obj = getattr(type(obj).__call__, "__func__", type(obj).__call__)
    if not isinstance(obj, types.FunctionType) or obj.__module__.startswith(FRAMEWORKS):
        return None
    return obj


def claude_use(*callables: object) -> Usage:
    """Claude use in the code of ``callables``, following the functions of their own module that they call."""
    usage = Usage()
    todo = list(callables)
    seen: set[types.CodeType] = set()
    while todo:
        func = _function(todo.pop())
        if func is None or func.__code__ in seen:
            continue
        seen.add(func.__code__)
        scope = {**func.__globals__, **_cells(func)}
        for inner in _codes(func.__code__):
            names = set(inner.co_names) | set(inner.co_freevars)
            values = [scope[name] for name in names if name in scope]
            usage.accessors |= names & CLAUDE_ACCESSORS
            if "client" in inner.co_names and (names & RBAC_NAMES or any(isinstance(v, RBAC) for v in values)):
                usage.accessors.add("client")
            usage.ungoverned |= set(inner.co_names) & UNGOVERNED
            for name in names & scope.keys():
                value = scope[name]
                if isinstance(value, (anthropic.Anthropic, anthropic.AsyncAnthropic)):
                    usage.ungoverned.add(name)
                elif isinstance(value, types.FunctionType) and value.__module__ == func.__module__:
                    todo.append(value)  # a helper of the app's own: read it too
    return usage


def _label(obj: object) -> str:
    obj = inspect.unwrap(obj)  # type: ignore[arg-type]
    return getattr(obj, "__qualname__", type(obj).__name__)


def _own_method(view_class: type, name: str) -> Callable[..., Any] | None:
    """``view_class.<name>`` when the app defines it (not the framework's base class)."""
    method = getattr(view_class, name, None)
    module = getattr(inspect.unwrap(method), "__module__", "") if method is not None else ""
    return None if method is None or module.startswith(FRAMEWORKS) else method


# -- Flask ------------------------------------------------------------------------------------------


def _flask_marker(view: object) -> list[Guard]:
    guard = getattr(view, GUARD_ATTRIBUTE, None)  # the marker requires_role sets, the same in every integration
    return [guard] if isinstance(guard, Guard) else []


def walk_flask(app: Flask) -> list[WalkedRoute]:
    state = app.extensions.get(flask_rbac._STATE_KEY)
    routes = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        methods = frozenset(rule.methods or ()) - {"HEAD", "OPTIONS"}
        ruled = [guard for _, guard in state.rules.matching(rule.rule)] if state is not None else []
        view_class = getattr(view, "view_class", None)
        if view_class is None:
            routes.append(WalkedRoute(rule.rule, methods, _label(view), claude_use(view), ruled + _flask_marker(view)))
            continue
        for method in sorted(methods):
            dispatch = _own_method(view_class, "dispatch_request")  # a View's handler, or a MethodView's override
            handler = _own_method(view_class, method.lower()) or dispatch
            guards = ruled + _flask_marker(view) + _flask_marker(handler)
            label = f"{view_class.__qualname__}.{getattr(handler, '__name__', '?')}"
            routes.append(WalkedRoute(rule.rule, frozenset({method}), label, claude_use(handler, dispatch), guards))
    return routes


# -- Starlette and FastAPI ----------------------------------------------------------------------------


def _dependency_guards(dependant: Any, usage: Usage) -> list[Guard]:
    """The guards in a FastAPI dependency tree; a guard that is a parameter hands the view its client."""
    guards = []
    for sub in dependant.dependencies:
        guard = getattr(sub.call, starlette_rbac.GUARD_ATTRIBUTE, None)
        if isinstance(guard, Guard):
            guards.append(guard)
            if sub.name is not None:
                usage.accessors.add(f"Depends(requires_role({guard.role!r}))")
        else:
            usage |= claude_use(sub.call)  # an app's own dependency may build a client itself
            guards.extend(_dependency_guards(sub, usage))
    return guards


def walk_asgi(routes: Iterable[Any], prefix: str = "") -> list[WalkedRoute]:
    """Starlette and FastAPI routes, with included routers resolved (their prefixes and dependencies)."""
    walked = []
    for context in iter_route_contexts(list(routes)):
        original = context.original_route
        if isinstance(original, (Mount, Host)):
            children = original.routes
            if children:
                walked.extend(walk_asgi(children, prefix + getattr(original, "path", "")))
            else:  # an opaque mounted app: read its code as one route
                walked.append(
                    WalkedRoute(prefix + original.path, frozenset(), _label(original.app), claude_use(original.app), [])
                )
            continue
        endpoint = context.endpoint
        methods = frozenset(context.methods or ()) - {"HEAD"}
        if inspect.isclass(endpoint):  # HTTPEndpoint: one handler per method
            for method in ("get", "post", "put", "patch", "delete"):
                handler = _own_method(endpoint, method)
                if handler is not None:
                    marker = list(starlette_rbac.endpoint_guards(handler))
                    label = f"{endpoint.__qualname__}.{method}"
                    walked.append(
                        WalkedRoute(
                            prefix + context.path, frozenset({method.upper()}), label, claude_use(handler), marker
                        )
                    )
            continue
        usage = claude_use(endpoint)
        guards = list(starlette_rbac.endpoint_guards(endpoint))
        dependant = getattr(context, "dependant", None)
        if dependant is not None:
            guards += _dependency_guards(dependant, usage)
        walked.append(WalkedRoute(prefix + context.path, methods, _label(endpoint), usage, guards))
    return walked


# -- Django -----------------------------------------------------------------------------------------


def _django_marker(view: object) -> list[Guard]:
    guard = getattr(view, django_guards.GUARD_ATTRIBUTE, None)
    return [guard] if isinstance(guard, Guard) else []


def walk_django(patterns: Iterable[Any], prefix: str = "/") -> list[WalkedRoute]:
    walked = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if hasattr(pattern, "url_patterns"):  # a URLResolver: include(...)
            walked.extend(walk_django(pattern.url_patterns, route))
            continue
        callback = pattern.callback
        view_class = getattr(callback, "view_class", None)
        if view_class is None:
            walked.append(
                WalkedRoute(route, frozenset(), _label(callback), claude_use(callback), _django_marker(callback))
            )
            continue
        class_guards = _django_marker(callback) + _django_marker(getattr(view_class, "dispatch", None))
        if issubclass(view_class, RoleRequiredMixin) and view_class.__claude_rbac_guard__ is not None:
            class_guards.append(view_class.__claude_rbac_guard__)
        dispatch = _own_method(view_class, "dispatch")  # an app's own dispatch runs for every method
        for method in view_class.http_method_names:
            handler = _own_method(view_class, method)
            if handler is not None:
                label = f"{view_class.__qualname__}.{method}"
                guards = class_guards + _django_marker(handler)
                usage = claude_use(handler, dispatch)
                walked.append(WalkedRoute(route, frozenset({method.upper()}), label, usage, guards))
    return walked


# -- the examples ----------------------------------------------------------------------------------


def walk_example(name: str, fake: FakeClaude) -> list[WalkedRoute]:
    if name == "django":
        django_project()
        return walk_django(get_resolver("examples.django_app.urls").url_patterns)
    rbac = make_rbac(fake)
    try:
        if name == "flask":
            from examples.flask_app import create_app

            return walk_flask(create_app(rbac))
        from examples.fastapi_app import create_app as create_fastapi_app

        return walk_asgi(create_fastapi_app(rbac).routes)
    finally:
        rbac.close()


def unguarded(routes: Iterable[WalkedRoute]) -> list[WalkedRoute]:
    return [route for route in routes if route.uses_claude and not route.guards]


EXAMPLES = ("flask", "fastapi", "django")


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_route_that_uses_claude_is_guarded(name: str, fake_claude: FakeClaude) -> None:
    routes = walk_example(name, fake_claude)
    assert unguarded(routes) == []
    assert [route for route in routes if route.usage.ungoverned] == [], "a view makes an anthropic client itself"
    claude_routes = {route.path for route in routes if route.uses_claude}
    assert claude_routes >= SHARED_CLAUDE_ROUTES, claude_routes
    assert {route.path for route in routes if route.guards} >= SHARED_CLAUDE_ROUTES | {"/admin"}


def _authorize_spans(exporter: InMemorySpanExporter) -> list[dict[str, Any]]:
    return [dict(s.attributes or {}) for s in exporter.get_finished_spans() if s.name == "claude_rbac.authorize"]


def _refused(target: Target, route: WalkedRoute, cookies: dict[str, str]) -> httpx.Response:
    """Call the route with a method it serves (Django's method decorators name theirs in Allow)."""
    method = min(route.methods) if route.methods else "GET"
    response = target.send(method, route.path, cookies=cookies)
    if response.status_code == 405:
        response = target.send(response.headers["allow"].split(",")[0].strip(), route.path, cookies=cookies)
    return response


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_guard_the_walk_finds_is_enforced(
    name: str, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter
) -> None:
    """The markers are not decoration: each guarded route denies the anonymous (401) and the viewer (403)."""
    guarded = [route for route in walk_example(name, fake_claude) if route.guards]
    assert guarded
    with serve(name, fake_claude) as target:
        viewer = target.login("vera")[0]
        for route in guarded:
            roles = {guard.role for guard in route.guards}
            span_exporter.clear()
            anonymous = _refused(target, route, {})
            assert anonymous.status_code == 401, (route, anonymous.text)
            assert error_of(anonymous)["error_code"] == "unauthenticated"
            assert _authorize_spans(span_exporter)[-1]["claude_rbac.required_role"] in roles
            if not any(POLICY.has_role(Principal("vera", "viewer"), role) for role in roles):
                refused = _refused(target, route, viewer)
                assert refused.status_code == 403, (route, refused.text)
                assert error_of(refused)["error_code"] == "role_insufficient"
    assert fake_claude.requests == []


# -- throwaway apps with holes: the walk finds them, and the client refuses outside a guard -------------

MESSAGES = [{"role": "user", "content": "hi"}]
ADA = Principal("ada", "admin")
"""The throwaway apps' signed-in user, an admin: even an admin gets no client outside a guard."""


def ask(claude: Any) -> dict[str, str]:
    return {"model": claude.messages.create(model=HAIKU, max_tokens=16, messages=MESSAGES).model}


async def aask(claude: Any) -> dict[str, str]:
    return {"model": (await claude.messages.create(model=HAIKU, max_tokens=16, messages=MESSAGES)).model}


def flask_ask() -> dict[str, str]:
    """A helper of the app's: the walk reads it, as it reads the views that call it."""
    return ask(flask_rbac.current_claude())


def leaky_flask_app(rbac: RBAC) -> Flask:
    app = Flask("walk")
    app.testing = True
    flask_rbac.ClaudeRBAC(app, rbac=rbac, principal_loader=lambda: ADA, rules={"/area/*": "power"})
    team = Blueprint("team", __name__, url_prefix="/team")

    @team.post("/guarded")
    @flask_rbac.requires_role("user")
    def guarded() -> Any:
        return flask_ask()

    @team.post("/leaky")
    def leaky() -> Any:
        return flask_ask()

    @app.post("/area/chat")
    def ruled() -> Any:
        return ask(flask_rbac.current_claude())

    @app.get("/plain")
    def plain() -> Any:
        return {"ok": True}

    @app.post("/raw")
    @flask_rbac.requires_role("admin")
    def raw() -> Any:  # guarded, but its client is nobody's: no role, no limits (never called below)
        return ask(anthropic.Anthropic(api_key="sk-ant-unused", base_url="http://127.0.0.1:9"))

    class Notes(MethodView):
        def get(self) -> Any:
            return {"notes": []}

        @flask_rbac.requires_role("admin")
        def post(self) -> Any:
            return flask_ask()

        def put(self) -> Any:
            return ask(flask_rbac.current_claude())

    app.register_blueprint(team)
    app.add_url_rule("/notes", view_func=Notes.as_view("notes"))
    return app


def test_the_walk_finds_an_unguarded_flask_route(fake_claude: FakeClaude) -> None:
    rbac = make_rbac(fake_claude)
    try:
        app = leaky_flask_app(rbac)
        routes = walk_flask(app)
        assert {(r.path, *r.methods) for r in unguarded(routes)} == {("/team/leaky", "POST"), ("/notes", "PUT")}
        assert [r.path for r in routes if r.usage.ungoverned] == ["/raw"]
        guarded = {(r.path, *r.methods): [g.role for g in r.guards] for r in routes if r.guards}
        assert guarded == {
            ("/raw", "POST"): ["admin"],
            ("/team/guarded", "POST"): ["user"],
            ("/area/chat", "POST"): ["power"],
            ("/notes", "POST"): ["admin"],
        }

        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://testserver") as http:
            for path in ("/team/guarded", "/area/chat", "/notes"):
                assert http.post(path).json() == {"model": HAIKU}
            for method, path in (("POST", "/team/leaky"), ("PUT", "/notes")):
                with pytest.raises(RuntimeError, match="No claude_rbac guard admitted this request"):
                    http.request(method, path)
    finally:
        rbac.close()
    assert fake_claude.count() == 3, "only the guarded routes reached Claude"
    with pytest.raises(RuntimeError):
        flask_rbac.current_claude()  # outside any request


def test_a_wsgi_app_gets_no_client_outside_a_rule(fake_claude: FakeClaude) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = ask(wsgi_rbac.get_claude(environ))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    rbac = make_rbac(fake_claude)
    guarded = wsgi_rbac.RBACMiddleware(app, rbac=rbac, principal_loader=lambda environ: ADA, rules={"/api/*": "user"})
    try:
        with httpx.Client(transport=httpx.WSGITransport(app=guarded), base_url="http://testserver") as http:
            assert http.post("/api/chat").json() == {"model": HAIKU}
            with pytest.raises(RuntimeError, match="No claude_rbac guard admitted this request"):
                http.post("/other/chat")
    finally:
        rbac.close()
    assert fake_claude.count() == 1
    with pytest.raises(RuntimeError):
        wsgi_rbac.get_claude({})


async def starlette_ask(request: Request) -> JSONResponse:
    return JSONResponse(await aask(starlette_rbac.get_claude(request)))


@starlette_rbac.requires_role("user")
async def guarded_endpoint(request: Request) -> JSONResponse:
    return await starlette_ask(request)


async def leaky_endpoint(request: Request) -> JSONResponse:
    return await starlette_ask(request)


class Notes(HTTPEndpoint):
    async def get(self, request: Request) -> JSONResponse:
        return JSONResponse({"notes": []})

    @starlette_rbac.requires_role("admin")
    async def post(self, request: Request) -> JSONResponse:
        return await starlette_ask(request)

    async def put(self, request: Request) -> JSONResponse:
        return JSONResponse(await aask(starlette_rbac.get_claude(request)))


def leaky_starlette_app(rbac: RBAC) -> Starlette:
    return Starlette(
        routes=[
            Route("/guarded", guarded_endpoint, methods=["POST"]),
            Route("/leaky", leaky_endpoint, methods=["POST"]),
            Route("/notes", Notes),
            Mount("/sub", routes=[Route("/leaky", leaky_endpoint, methods=["POST"])]),
            Mount("/app", app=Starlette(routes=[Route("/guarded", guarded_endpoint, methods=["POST"])])),
        ],
        middleware=[Middleware(starlette_rbac.RBACMiddleware, rbac=rbac, principal_loader=lambda connection: ADA)],
        lifespan=closing_lifespan(rbac),
    )


def test_the_walk_finds_an_unguarded_starlette_route(fake_claude: FakeClaude) -> None:
    rbac = make_rbac(fake_claude)
    app = leaky_starlette_app(rbac)
    routes = walk_asgi(app.routes)
    assert {(r.path, *r.methods) for r in unguarded(routes)} == {
        ("/leaky", "POST"),
        ("/sub/leaky", "POST"),
        ("/notes", "PUT"),
    }
    guarded = {(r.path, *r.methods): [g.role for g in r.guards] for r in routes if r.guards}
    assert guarded == {
        ("/guarded", "POST"): ["user"],
        ("/app/guarded", "POST"): ["user"],
        ("/notes", "POST"): ["admin"],
    }

    with TestClient(app) as http:
        for path in ("/guarded", "/app/guarded", "/notes"):
            assert http.post(path).json() == {"model": HAIKU}
        for method, path in (("POST", "/leaky"), ("POST", "/sub/leaky"), ("PUT", "/notes")):
            with pytest.raises(RuntimeError, match="get_claude"):
                http.request(method, path)
    assert fake_claude.count() == 3


user_guard = fastapi_rbac.requires_role("user")


def raw_client(request: Request) -> AsyncAnthropic:
    """An app's own dependency that builds a governed client without a route guard: the walk flags its routes."""
    rbac = request.app.state.rbac
    return rbac.async_client(starlette_rbac.get_principal(request))


def leaky_fastapi_app(rbac: RBAC) -> FastAPI:
    app = FastAPI(lifespan=closing_lifespan(rbac))
    app.state.rbac = rbac
    app.add_middleware(fastapi_rbac.RBACMiddleware, rbac=rbac, principal_loader=lambda connection: ADA)
    team = APIRouter(prefix="/team", dependencies=[Depends(fastapi_rbac.requires_role("power"))])
    inner = APIRouter(prefix="/inner")

    @inner.post("/report")
    async def report(claude: AsyncAnthropic = Depends(raw_client)) -> Any:  # noqa: B008
        return await aask(claude)

    team.include_router(inner)

    @app.post("/chat")
    async def chat(claude: AsyncAnthropic = Depends(user_guard)) -> Any:  # noqa: B008
        return await aask(claude)

    @app.post("/leaky")
    async def leaky(claude: AsyncAnthropic = Depends(raw_client)) -> Any:  # noqa: B008
        return await aask(claude)

    @app.post("/get-claude")
    async def misuse(request: Request) -> Any:
        return await aask(starlette_rbac.get_claude(request))

    @app.get("/plain")
    async def plain() -> Any:
        return {"ok": True}

    app.include_router(team)
    app.mount("/legacy", Starlette(routes=[Route("/chat", leaky_endpoint, methods=["POST"])]))
    return app


def test_the_walk_finds_an_unguarded_fastapi_route(fake_claude: FakeClaude) -> None:
    rbac = make_rbac(fake_claude)
    app = leaky_fastapi_app(rbac)
    routes = walk_asgi(app.routes)
    assert {(r.path, *r.methods) for r in unguarded(routes)} == {
        ("/leaky", "POST"),
        ("/get-claude", "POST"),
        ("/legacy/chat", "POST"),
    }
    guarded = {r.path: [g.role for g in r.guards] for r in routes if r.guards}
    assert guarded == {"/team/inner/report": ["power"], "/chat": ["user"]}

    with TestClient(app) as http:
        assert http.post("/chat").json() == {"model": HAIKU}
        assert http.post("/team/inner/report").json() == {"model": HAIKU}
        # The hole the walk reports: a governed client, but no route guard (only the role's own limits apply).
        assert http.post("/leaky").json() == {"model": HAIKU}
        for path in ("/get-claude", "/legacy/chat"):
            with pytest.raises(RuntimeError, match="get_claude"):
                http.post(path)
    assert fake_claude.count() == 3


# -- Django: this module is also the throwaway URLconf --------------------------------------------------

SIGNED_IN: dict[str, Principal | None] = {"principal": ADA}
"""The throwaway Django app's server-side sign-in (what a session lookup would answer)."""


def django_resolver(request: Any) -> Principal | None:
    return SIGNED_IN["principal"]


def django_ask(request: Any) -> JsonResponse:
    return JsonResponse(ask(request.claude))


@django_guards.requires_role("user")
def django_guarded(request: Any) -> JsonResponse:
    return django_ask(request)


def django_leaky(request: Any) -> JsonResponse:
    return django_ask(request)


async def django_async_leaky(request: Any) -> JsonResponse:
    return JsonResponse(await aask(await request.aclaude()))


class DjangoReport(RoleRequiredMixin, DjangoView):
    required_role = "power"

    def post(self, request: Any) -> JsonResponse:
        return django_ask(request)


class DjangoMixed(DjangoView):
    @method_decorator(django_guards.requires_role("admin"))
    def post(self, request: Any) -> JsonResponse:
        return django_ask(request)

    def put(self, request: Any) -> JsonResponse:
        return JsonResponse(ask(request.claude))


urlpatterns = [
    path("guarded", django_guarded),
    path("leaky", django_leaky),
    path("aleaky", django_async_leaky),
    path("nested/", include([path("report", DjangoReport.as_view()), path("mixed", DjangoMixed.as_view())])),
]


@pytest.fixture
def django_throwaway(fake_claude: FakeClaude) -> Iterator[httpx.Client]:
    django_project()
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    from ._support import django_settings

    with (
        django_settings(fake_claude, resolver=django_resolver),
        override_settings(ROOT_URLCONF=__name__),
        httpx.Client(transport=httpx.WSGITransport(app=WSGIHandler()), base_url="http://testserver") as http,
    ):
        yield http
    SIGNED_IN["principal"] = ADA


def test_the_walk_finds_an_unguarded_django_view(django_throwaway: httpx.Client, fake_claude: FakeClaude) -> None:
    routes = walk_django(get_resolver(__name__).url_patterns)
    assert {(r.path, *r.methods) for r in unguarded(routes)} == {("/leaky",), ("/aleaky",), ("/nested/mixed", "PUT")}
    guarded = {(r.path, *r.methods): [g.role for g in r.guards] for r in routes if r.guards}
    assert guarded == {
        ("/guarded",): ["user"],
        ("/nested/report", "POST"): ["power"],
        ("/nested/mixed", "POST"): ["admin"],
    }
    for method, path_ in (("POST", "/guarded"), ("POST", "/nested/report"), ("POST", "/nested/mixed")):
        assert django_throwaway.request(method, path_).json() == {"model": HAIKU}
    assert fake_claude.count() == 3


class ReachedClaudeUnguarded(Exception):
    pass


def test_django_request_claude_outside_a_guard_raises(django_throwaway: httpx.Client, fake_claude: FakeClaude) -> None:
    response = django_throwaway.post("/leaky")
    if response.status_code == 200 or fake_claude.count():
        raise ReachedClaudeUnguarded(f"an unguarded view reached Claude as {ADA}: {response.status_code}")


def test_a_starlette_request_without_a_guard_has_no_client() -> None:
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": [], "state": {}})
    with pytest.raises(RuntimeError, match="get_claude"):
        starlette_rbac.get_claude(request)
