"""``request.principal`` is lazy, like ``request.user``: loaded by the first guard or view that needs it, once.

A page no guard protects and a 404 make no query of ours; a guarded page pays for the principal once.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.db import connection
from django.test import AsyncClient, TestCase
from django.test.utils import CaptureQueriesContext

from claude_rbac import Principal

from .project import USERS
from .support import login
from .test_async_and_class_views import run, signed_in


def queries_for(client: Any, url: str) -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        status = client.get(url).status_code
    return status, [query["sql"] for query in captured.captured_queries]


def test_an_unguarded_page_and_a_404_make_no_query_of_ours(client: Any, make_user: Any) -> None:
    signed_in_user = login(make_user(groups=[USERS]))  # a real session in the database
    assert queries_for(signed_in_user, "/page") == (200, [])
    assert queries_for(signed_in_user, "/no/such/page") == (404, [])
    status, guarded = queries_for(signed_in_user, "/twice")  # two guards: the principal loads once
    assert status == 200
    assert [sql.split(" FROM ")[1].split()[0] for sql in guarded] == [
        '"django_session"',
        '"testapp_member"',
        '"auth_group"',
    ]


def test_the_lazy_principal_and_its_value(client: Any, make_user: Any) -> None:
    assert client.get("/is-none").json() == {"lazy": True, "value": True}
    assert login(make_user(role="user")).get("/is-none").json() == {"lazy": False, "value": False}


def test_async_code_awaits_the_principal(client: Any, make_user: Any) -> None:
    user = make_user(groups=[USERS])

    async def scenario() -> list[Any]:
        return [await AsyncClient().get("/awhoami"), await (await signed_in(user)).get("/awhoami")]

    anonymous, known = run(scenario)
    assert anonymous.json() == {"principal": None}
    assert known.json() == {"principal": [str(user.pk), "user"]}


def test_the_lazy_principal_refuses_to_block_an_async_view(client: Any, make_user: Any) -> None:
    user = make_user(role="user")

    async def scenario() -> Any:
        return await (await signed_in(user)).get("/awhoami/lazy")

    with pytest.raises(SynchronousOnlyOperation, match=r"await request\.aprincipal\(\)"):
        run(scenario)


def slow_sync_loader(request: Any) -> Any:
    """A sync loader slower than the timeout: it runs in the request's thread, untimed, and its answer counts."""
    time.sleep(0.3)
    return Principal(id="slow", role="admin")


def test_a_sync_loader_is_not_timed(claude_settings: Any) -> None:
    claude_settings(PRINCIPAL_LOADER=f"{__name__}.slow_sync_loader", PRINCIPAL_LOADER_TIMEOUT=0.05)

    async def scenario() -> Any:
        return await AsyncClient().get("/admin")

    assert run(scenario).status_code == 200


class GuardsInsideATestCaseTransaction(TestCase):
    """Django's TestCase wraps each test in a transaction that only the test's own connection sees: the
    principal must load on that connection, in async requests too, as ``request.user`` does."""

    async def test_async_client(self) -> None:
        from django.contrib.auth import get_user_model

        user = await get_user_model().objects.acreate(username="in-a-transaction", claude_role="admin")
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.get("/admin")
        assert (response.status_code, response.content) == (200, b"<h1>admin</h1>")
        assert (await client.get("/awhoami")).json() == {"principal": [str(user.pk), "admin"]}
