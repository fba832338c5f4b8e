"""Async views (AsyncClient), class-based views (RoleRequiredMixin) and method_decorator, sync and async."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import SynchronousOnlyOperation
from django.test import AsyncClient

from claude_rbac.testing import FakeClaude

from .project import HAIKU, OPUS, SONNET, USERS, VIEWERS
from .support import aclose_clients, login

T = TypeVar("T")


def run(coroutine_function: Callable[[], Awaitable[T]]) -> T:
    """Run in an event loop the way Django's own async tests do (thread-sensitive code stays on this thread).

    The loop ends with the scenario, so the async connection pools it opened are closed in it.
    """

    async def scenario() -> T:
        try:
            return await coroutine_function()
        finally:
            await aclose_clients()

    return async_to_sync(scenario)()


async def apost(client: AsyncClient, url: str, **body: Any) -> Any:
    return await client.post(url, data=json.dumps(body), content_type="application/json")


async def signed_in(user: Any) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(user)
    return client


def test_async_view_gets_the_async_client(client: Any, make_user: Any, fake_claude: FakeClaude) -> None:
    user = make_user(groups=[USERS])

    async def scenario() -> Any:
        return await apost(await signed_in(user), "/api/achat", prompt="hi async")

    response = run(scenario)
    assert response.status_code == 200
    assert response.json() == {"text": response.json()["text"], "model": HAIKU, "user": str(user.pk), "role": "user"}
    (sent,) = fake_claude.calls()
    assert sent.json["messages"] == [{"role": "user", "content": "hi async"}]


def test_async_view_denials(client: Any, make_user: Any, fake_claude: FakeClaude) -> None:
    viewer = make_user(groups=[VIEWERS])
    user = make_user(role="user")

    async def scenario() -> list[Any]:
        return [
            await apost(AsyncClient(), "/api/achat", prompt="hi"),
            await apost(await signed_in(viewer), "/api/achat", prompt="hi"),
            await apost(await signed_in(user), "/api/achat", prompt="hi", model=OPUS),
        ]

    anonymous, denied_role, denied_model = run(scenario)
    assert (anonymous.status_code, anonymous.json()["error"]["error_code"]) == (401, "unauthenticated")
    assert (denied_role.status_code, denied_role.json()["error"]["error_code"]) == (403, "role_insufficient")
    assert (denied_model.status_code, denied_model.json()["error"]["error_code"]) == (403, "model_not_allowed")
    assert fake_claude.count() == 0


def test_the_clients_are_genuine_anthropic_clients(client: Any, make_user: Any) -> None:
    user = make_user(role="user")
    assert login(user).get("/client-types").json() == {"sync": True}

    async def scenario() -> Any:
        return await (await signed_in(user)).get("/aclient-types")

    assert run(scenario).json() == {"async": True}


def test_the_sync_client_refuses_to_block_an_async_view(client: Any, make_user: Any, fake_claude: FakeClaude) -> None:
    user = make_user(role="user")

    async def scenario() -> Any:
        return await apost(await signed_in(user), "/api/achat/misuse", prompt="hi")

    with pytest.raises(SynchronousOnlyOperation, match=r"await request\.aclaude\(\)"):
        run(scenario)
    assert fake_claude.count() == 0


def test_sync_views_keep_working_under_the_async_client(client: Any, make_user: Any, fake_claude: FakeClaude) -> None:
    user = make_user(role="user")

    async def scenario() -> Any:
        return await apost(await signed_in(user), "/api/chat", prompt="sync view, async request")

    response = run(scenario)
    assert response.status_code == 200
    assert fake_claude.count() == 1


def test_custom_sync_resolver_runs_in_async_requests(
    claude_settings: Any, make_user: Any, fake_claude: FakeClaude
) -> None:
    claude_settings(PRINCIPAL_LOADER=f"{__name__}.resolver_from_session")
    user = make_user()

    async def scenario() -> Any:
        client = await signed_in(user)
        return await client.get("/whoami")

    assert run(scenario).json()["principal"] == [f"session-{user.pk}", "power"]


def resolver_from_session(request: Any) -> Any:
    from claude_rbac import Principal

    user = request.user  # a sync resolver touching the ORM: it runs in a thread in async requests
    return Principal(id=f"session-{user.pk}", role="power") if user.is_authenticated else None


# -- class-based views ----------------------------------------------------------------------------


def test_role_required_mixin_sync(client: Any, make_user: Any, fake_claude: FakeClaude) -> None:
    assert client.post("/api/report").status_code == 401
    assert login(make_user(role="user")).post("/api/report").status_code == 403
    assert fake_claude.count() == 0
    response = login(make_user(role="power")).post("/api/report", data="{}", content_type="application/json")
    assert response.status_code == 200
    assert fake_claude.calls()[0].json["model"] == SONNET


def test_role_required_mixin_async(client: Any, make_user: Any, fake_claude: FakeClaude) -> None:
    user = make_user(role="user")
    admin = make_user(role="admin")

    async def scenario() -> list[Any]:
        return [
            await apost(AsyncClient(), "/api/areport"),
            await apost(await signed_in(user), "/api/areport"),
            await apost(await signed_in(admin), "/api/areport", model=OPUS),  # the view allows sonnet only
            await apost(await signed_in(admin), "/api/areport"),
        ]

    anonymous, denied, narrowed, allowed = run(scenario)
    assert [anonymous.status_code, denied.status_code, narrowed.status_code] == [401, 403, 403]
    assert narrowed.json()["error"]["error_code"] == "model_not_allowed"
    assert allowed.status_code == 200
    assert allowed.json()["role"] == "admin"
    assert [call.json["model"] for call in fake_claude.calls()] == [SONNET]


def test_method_decorator_on_a_sync_method(client: Any, make_user: Any, fake_claude: FakeClaude) -> None:
    assert client.get("/admin/cbv").status_code == 401
    assert login(make_user(role="power")).get("/admin/cbv").status_code == 403
    response = login(make_user(role="admin")).get("/admin/cbv")
    assert response.status_code == 200
    assert response.content == b"admin via method_decorator"


def test_method_decorator_on_dispatch(client: Any, make_user: Any, fake_claude: FakeClaude) -> None:
    assert client.post("/api/dispatch").status_code == 401
    response = login(make_user(role="user")).post("/api/dispatch", data="{}", content_type="application/json")
    assert response.status_code == 200
    assert fake_claude.count() == 1


def test_method_decorator_on_an_async_method(client: Any, make_user: Any, fake_claude: FakeClaude) -> None:
    user = make_user(role="user")

    async def scenario() -> list[Any]:
        return [
            await apost(AsyncClient(), "/api/apost"),
            await apost(await signed_in(user), "/api/apost", max_tokens=500),
        ]

    anonymous, allowed = run(scenario)
    assert anonymous.status_code == 401
    assert allowed.status_code == 200
    assert fake_claude.calls()[0].json["max_tokens"] == 20  # clamped to the decorator's max_tokens


def test_the_middleware_runs_in_either_mode_without_an_adapter(
    claude_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from asgiref.sync import iscoroutinefunction
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    from claude_rbac.integrations.django import RBACMiddleware

    async def async_view(request: Any) -> Any:
        return None

    assert iscoroutinefunction(RBACMiddleware(async_view))
    assert not iscoroutinefunction(RBACMiddleware(lambda request: None))
    with override_settings(DEBUG=True), caplog.at_level(logging.DEBUG, logger="django.request"):
        WSGIHandler()
        ASGIHandler()  # Django logs "... handler adapted for middleware ..." for every adapter it adds
    assert not [record for record in caplog.records if "adapted" in record.getMessage()]


# -- RoleRequiredMixin in either order of the bases; method_decorator on an async view's dispatch ---------


def decisions(span_exporter: Any) -> list[Any]:
    return [span for span in span_exporter.get_finished_spans() if span.name == "claude_rbac.authorize"]


@pytest.mark.parametrize("url", ["/cbv/mixin-first", "/cbv/view-first"])
def test_role_required_mixin_guards_in_either_order(client: Any, make_user: Any, span_exporter: Any, url: str) -> None:
    anonymous = client.get(url)
    assert (anonymous.status_code, anonymous.json()["error"]["error_code"]) == (401, "unauthenticated")
    assert login(make_user(role="power")).get(url).status_code == 403
    span_exporter.clear()
    admin = make_user(role="admin")
    response = login(admin).get(url)
    assert (response.status_code, response.content) == (200, f"admin data for {admin.pk}".encode())
    assert len(decisions(span_exporter)) == 1  # guarded once, not once per way in


@pytest.mark.parametrize("url", ["/cbv/async-mixin-first", "/cbv/async-view-first", "/cbv/async-dispatch"])
def test_async_class_views_answer_denials_not_500(client: Any, make_user: Any, url: str) -> None:
    power, admin = make_user(role="power"), make_user(role="admin")

    async def scenario() -> list[Any]:
        return [
            await AsyncClient().get(url),
            await (await signed_in(power)).get(url),
            await (await signed_in(admin)).get(url),
        ]

    anonymous, denied, allowed = run(scenario)
    assert (anonymous.status_code, anonymous.json()["error"]["error_code"]) == (401, "unauthenticated")
    assert (denied.status_code, denied.json()["error"]["error_code"]) == (403, "role_insufficient")
    assert (allowed.status_code, allowed.content) == (200, f"admin data for {admin.pk}".encode())


def test_a_view_first_class_with_its_own_dispatch_and_subclasses(client: Any, make_user: Any) -> None:
    from .views import ViewFirstWithItsOwnDispatch

    ViewFirstWithItsOwnDispatch.seen.clear()
    assert client.get("/cbv/own-dispatch").status_code == 401
    assert login(make_user(role="power")).get("/cbv/own-dispatch").status_code == 403
    admin = make_user(role="admin")
    assert login(admin).get("/cbv/own-dispatch").status_code == 200
    assert ViewFirstWithItsOwnDispatch.seen == [str(admin.pk)]  # its dispatch ran after the guard, once
    assert client.get("/cbv/power-subclass").status_code == 401
    assert login(make_user(role="user")).get("/cbv/power-subclass").status_code == 403
    assert login(make_user(role="power")).get("/cbv/power-subclass").status_code == 200  # the subclass's role


def test_access_mixins_before_it_keep_their_order(client: Any, make_user: Any) -> None:
    redirected = client.get("/cbv/login-then-role")  # LoginRequiredMixin answers first, as the bases say
    assert (redirected.status_code, redirected["Location"]) == (302, "/accounts/login/?next=/cbv/login-then-role")
    assert login(make_user(role="power")).get("/cbv/login-then-role").status_code == 403
    assert login(make_user(role="admin")).get("/cbv/login-then-role").status_code == 200
