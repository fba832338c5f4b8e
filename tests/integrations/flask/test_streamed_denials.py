"""A refusal after a streamed response has started: what gunicorn does, the test client does too.

Once the 200 and its headers are on the wire, nothing can turn the response into a 403: gunicorn logs
the error and cuts the connection, and the client gets a 200 with a truncated body. Flask's test client
raised the ``AccessDenied`` into the test instead, so a test passed that hid the production behaviour.
Opening the Claude stream in the view (before returning the ``Response``) keeps a refusal an HTTP error.
"""

from __future__ import annotations

import logging

import httpx
import pytest
from flask.testing import FlaskClient

from claude_rbac.testing import FakeClaude
from tests.support import servers

from ._served_streams import app
from .conftest import HAIKU, OPUS, make_rbac

USER = {"Authorization": "Bearer t-uma"}


def test_the_test_client_gives_the_truncated_200_a_server_gives(
    fake_claude: FakeClaude, caplog: pytest.LogCaptureFixture
) -> None:
    client = app(make_rbac(fake_claude)).test_client()
    assert isinstance(client, FlaskClient)
    response = client.get("/lazy", query_string={"model": OPUS}, headers=USER)  # raised AccessDenied before
    assert response.status_code == 200
    assert response.get_data(as_text=True) == ": connected\n\n"  # what the server had sent: no "done"
    assert fake_claude.count() == 0
    (record,) = [r for r in caplog.records if r.name == "claude_rbac" and r.levelno == logging.ERROR]
    assert "after the streamed response had started" in record.getMessage()
    assert "model_not_allowed" in record.getMessage()


def test_a_stream_opened_in_the_view_is_refused_with_an_http_error(fake_claude: FakeClaude) -> None:
    client = app(make_rbac(fake_claude)).test_client()
    refused = client.get("/eager", query_string={"model": OPUS}, headers=USER)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["error_code"] == "model_not_allowed"
    allowed = client.get("/eager", query_string={"model": HAIKU}, headers=USER)
    assert allowed.status_code == 200
    assert allowed.get_data(as_text=True).endswith("event: done\ndata: {}\n\n")


@pytest.mark.slow
def test_under_gunicorn(fake_claude: FakeClaude) -> None:
    env = {"ANTHROPIC_BASE_URL": fake_claude.url}
    with (
        servers.gunicorn("tests.integrations.flask._served_streams:app()", env, workers=1) as url,
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        refused = http.get("/eager", params={"model": OPUS}, headers=USER)
        assert (refused.status_code, refused.json()["error"]["error_code"]) == (403, "model_not_allowed")
        received: list[str] = []
        with http.stream("GET", "/lazy", params={"model": OPUS}, headers=USER) as lazy:
            assert lazy.status_code == 200  # too late for a 403: the status line is already sent
            with pytest.raises(httpx.RemoteProtocolError):  # the server cut the body short
                received.extend(lazy.iter_text())
        assert "".join(received) in ("", ": connected\n\n")
        assert "done" not in "".join(received)
    assert fake_claude.count() == 0
