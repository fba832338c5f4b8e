"""The plain WSGI middleware's path rules match the path the framework routes on: UTF-8, not latin-1.

PEP 3333 hands an app ``PATH_INFO`` as the raw bytes decoded as latin-1; Flask (werkzeug) routes on
those bytes decoded as UTF-8. A rule on ``/über/*`` matched against the latin-1 form (``/Ã¼ber/...``)
never fired, so the route it was meant to close stayed open to every signed-in role.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from werkzeug.test import Client

from claude_rbac.testing import FakeClaude
from tests.support import servers

from ._served_wsgi import unicode_paths
from ._support import make_rbac

PATHS = [
    pytest.param("/über/x", 200, id="latin-1-letter"),
    pytest.param("/日本/x", 200, id="cjk"),
    pytest.param("/café", 200, id="exact-rule"),
    pytest.param("/über/../über/x", 404, id="dot-segments"),  # werkzeug routes dot segments as sent
]
USER = {"Authorization": "Bearer t-uma"}
ADMIN = {"Authorization": "Bearer t-ada"}


@pytest.fixture
def werkzeug_client(fake_claude: FakeClaude) -> Iterator[Client]:
    with make_rbac(fake_claude) as rbac:
        yield Client(unicode_paths(rbac))


@pytest.mark.parametrize(("path", "for_admin"), PATHS)
def test_a_rule_on_a_non_ascii_path_holds_in_process(werkzeug_client: Client, path: str, for_admin: int) -> None:
    """werkzeug's own test client builds the environ as PEP 3333 says (latin-1 PATH_INFO)."""
    assert werkzeug_client.get(quote(path), headers=USER).status_code == 403
    assert werkzeug_client.get(quote(path), headers=ADMIN).status_code == for_admin


@pytest.mark.slow
def test_a_rule_on_a_non_ascii_path_holds_under_gunicorn(fake_claude: FakeClaude) -> None:
    env = {"ANTHROPIC_BASE_URL": fake_claude.url}
    with (
        servers.gunicorn("tests.security._served_wsgi:unicode_paths()", env, workers=1) as url,
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        for path in ("/über/x", "/日本/x", "/café"):
            user, admin = http.get(quote(path), headers=USER), http.get(quote(path), headers=ADMIN)
            assert (path, user.status_code) == (path, 403)
            assert user.json()["error"]["error_code"] == "role_insufficient"
            assert (path, admin.status_code) == (path, 200)
        assert http.get("/über/x").status_code == 401
