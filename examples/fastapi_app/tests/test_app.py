"""The demo through FastAPI's test client: each role sees the difference, denials read well, forgeries fail."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from claude_rbac.cli import main
from claude_rbac.testing import FakeClaude
from examples.common import DEMO_USERS, MODELS
from examples.spend_checks import EXPECTED as SPENT
from examples.spend_checks import SCRIPTED, page_figures, report_figures

HAIKU, SONNET, OPUS = MODELS


def events(body: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in body.strip().split("\n\n"):
        name = re.search(r"^event: (.*)$", block, re.M)
        data = re.search(r"^data: (.*)$", block, re.M)
        assert data is not None, block
        out.append((name.group(1) if name else "message", json.loads(data.group(1))))
    return out


def test_the_page_offers_every_demo_user_and_model(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for name, role in DEMO_USERS.items():
        assert f'data-user="{name}"' in page
        assert f"<small>{role}</small>" in page
    for model in MODELS:
        assert f'<option value="{model}">' in page
    for element in (
        "send",
        "prompt",
        "model",
        "route",
        "web-search",
        "answer",
        "denied",
        "remaining",
        "limit",
        "admin-link",
    ):
        assert f'id="{element}"' in page, element
    assert "<!--" not in page.split("<body>", 1)[1], "every placeholder was filled"


EXPECTED = {
    # user: (chat haiku, chat sonnet, long opus, long sonnet, admin page)
    "vera": (403, 403, 403, 403, 403),
    "uma": (200, 403, 403, 403, 403),
    "paul": (200, 200, 200, 403, 403),
    "ada": (200, 200, 200, 403, 200),
}


@pytest.mark.parametrize("username", list(DEMO_USERS))
def test_each_role_sees_the_difference(
    login: Callable[[str], TestClient], offline_env: FakeClaude, username: str
) -> None:
    client = login(username)
    me = client.get("/api/me").json()
    assert (me["user"], me["role"]) == (username, DEMO_USERS[username])

    statuses = (
        client.post("/api/chat", json={"prompt": "Hi"}).status_code,
        client.post("/api/chat", json={"prompt": "Hi", "model": SONNET}).status_code,
        client.post("/api/long", json={"prompt": "Tell me everything"}).status_code,
        client.post("/api/long", json={"prompt": "Tell me everything", "model": SONNET}).status_code,
        client.get("/admin").status_code,
    )
    assert statuses == EXPECTED[username]
    assert offline_env.count() == statuses[:4].count(200), "every denial stayed in the process"
    models = {entry["model"]: entry["allowed"] for entry in client.get("/api/models").json()}
    assert models == {HAIKU: username != "vera", SONNET: username in ("paul", "ada"), OPUS: username in ("paul", "ada")}


def test_denials_are_readable_anthropic_errors(login: Callable[[str], TestClient], offline_env: FakeClaude) -> None:
    client = login("uma")
    model = client.post("/api/chat", json={"prompt": "Hi", "model": OPUS})
    assert model.status_code == 403
    assert model.json() == {
        "type": "error",
        "error": {
            "type": "permission_error",
            "message": "Role 'user' may not use model 'claude-opus-4-7'.",
            "error_code": "model_not_allowed",
        },
    }
    route = client.post("/api/long", json={"prompt": "Hi"})
    assert route.json()["error"]["error_code"] == "role_insufficient"
    admin = client.get("/admin")
    assert admin.status_code == 403
    assert admin.json()["error"]["message"] == "Role 'user' may not use this route."
    assert offline_env.requests == []


@pytest.mark.parametrize(("username", "status"), [("uma", 403), ("paul", 200), ("ada", 200)])
def test_web_search_is_for_power_users_and_up(
    login: Callable[[str], TestClient], offline_env: FakeClaude, username: str, status: int
) -> None:
    """The page's "Search the web" box sends a web search tool, which the policy grants from power up."""
    client = login(username)
    chat = client.post("/api/chat", json={"prompt": "What is new?", "web_search": True})
    stream = client.get("/api/chat/stream", params={"prompt": "What is new?", "web_search": "true"})
    assert (chat.status_code, stream.status_code) == (status, status)
    if status == 403:
        assert chat.json()["error"] == {
            "type": "permission_error",
            "message": "Role 'user' may not use the 'web_search_20250305' tool.",
            "error_code": "tool_not_allowed",
        }
        assert stream.json()["error"]["error_code"] == "tool_not_allowed"
        assert offline_env.requests == []
    else:
        assert [call.json["tools"][0]["type"] for call in offline_env.calls()] == ["web_search_20250305"] * 2
        assert offline_env.calls()[0].json.get("max_tokens") == 512


def test_admin_page_lists_the_policy(login: Callable[[str], TestClient]) -> None:
    page = login("ada").get("/admin")
    assert page.status_code == 200
    assert "Signed in as <b>ada</b>" in page.text
    row = re.search(r"<tr><td>power</td>(.*?)</tr>", page.text)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(1))
    assert cells[0] == "yes"
    assert set(cells[1].split(", ")) == {"claude-haiku-*", "claude-sonnet-*", "claude-opus-*"}
    assert cells[2:] == ["4096", "60"]
    assert "<td>viewer</td><td>no</td><td>-</td>" in page.text


def test_streamed_answer(login: Callable[[str], TestClient], offline_env: FakeClaude) -> None:
    client = login("uma")
    response = client.get("/api/chat/stream", params={"prompt": "Tell me a story"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    received = events(response.text)
    text = "".join(data["text"] for name, data in received if name == "message")
    assert text == "Hello from FakeClaude, a local stand-in for the Messages API."
    assert received[-1] == ("done", {"usage": {"input_tokens": 4, "output_tokens": 10}})
    assert offline_env.calls()[0].json["stream"] is True

    denied = client.get("/api/chat/stream", params={"prompt": "Hi", "model": OPUS})
    assert denied.status_code == 403
    assert denied.json()["error"]["error_code"] == "model_not_allowed"
    assert offline_env.count() == 1


def test_max_tokens_above_the_cap_is_clamped(login: Callable[[str], TestClient], offline_env: FakeClaude) -> None:
    client = login("uma")
    assert client.post("/api/chat", json={"prompt": "Hi", "max_tokens": 5000}).status_code == 200
    assert client.get("/api/chat/stream", params={"prompt": "Hi", "max_tokens": 9000}).status_code == 200
    assert [call.json["max_tokens"] for call in offline_env.calls()] == [512, 512]


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_remaining_requests_this_minute(request: pytest.FixtureRequest, offline_env: FakeClaude, storage: str) -> None:
    if storage == "redis":
        request.getfixturevalue("redis_env")
    from examples.fastapi_app import create_app

    with TestClient(create_app()) as client:
        client.post("/login", json={"username": "uma"})
        assert client.get("/api/me").json()["rate_limits"][0] | {"reset": 0} == {
            "kind": "rpm",
            "limit": 10,
            "remaining": 10,
            "reset": 0,
        }
        statuses = [client.post("/api/chat", json={"prompt": f"Hi {i}"}).status_code for i in range(11)]
        assert statuses == [200] * 10 + [429]
        limited = client.post("/api/chat", json={"prompt": "Once more"})
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["error"]["error_code"] == "rate_limited"
        assert client.get("/api/me").json()["rate_limits"][0]["remaining"] == 0
    assert offline_env.count() == 10


def test_sign_in_takes_a_name_and_nothing_else(client: TestClient) -> None:
    unknown = client.post("/login", json={"username": "mallory"})
    assert unknown.status_code == 401
    assert unknown.json()["error"]["type"] == "authentication_error"
    claims_admin = client.post("/login", json={"username": "uma", "role": "admin"})
    assert claims_admin.json() == {"user": "uma", "role": "user"}
    form = client.post("/login", data={"username": "paul", "role": "admin"})
    assert form.json() == {"user": "paul", "role": "power"}
    browser = client.post("/login", data={"username": "ada"}, headers={"accept": "text/html"}, follow_redirects=False)
    assert browser.status_code == 303
    assert client.get("/api/me").json()["role"] == "admin"
    assert client.post("/logout").json() == {"ok": True}
    assert client.get("/api/me").status_code == 401


def test_signed_out(client: TestClient, offline_env: FakeClaude) -> None:
    assert client.get("/api/me").json()["error"]["error_code"] == "unauthenticated"
    assert client.post("/api/chat", json={"prompt": "Hi"}).status_code == 401
    assert client.get("/api/chat/stream", params={"prompt": "Hi"}).status_code == 401
    assert all(not entry["allowed"] for entry in client.get("/api/models").json())
    assert offline_env.requests == []


def test_forged_headers_query_and_cookies_change_nothing(
    login: Callable[[str], TestClient], offline_env: FakeClaude
) -> None:
    client = login("uma")
    forged = {"x-role": "admin", "x-user": "ada", "x-forwarded-user": "ada", "remote-user": "ada"}
    client.cookies.update({"role": "admin", "username": "ada"})
    assert client.get("/admin?role=admin&username=ada", headers=forged).status_code == 403
    opus = client.post("/api/chat?role=admin", json={"prompt": "Hi", "model": OPUS}, headers=forged)
    assert opus.status_code == 403
    assert client.get("/api/me?username=ada", headers=forged).json()["user"] == "uma"

    unsigned = base64.b64encode(json.dumps({"username": "ada"}).encode()).decode()
    client.cookies.clear()
    client.cookies.set("session", unsigned)
    assert client.get("/api/me").status_code == 401
    assert client.get("/admin").status_code == 401
    assert offline_env.requests == []


def test_bad_input_is_an_invalid_request_error(login: Callable[[str], TestClient], offline_env: FakeClaude) -> None:
    client = login("uma")
    for body in ({"prompt": ""}, {"prompt": "Hi", "max_tokens": "lots"}, {"prompt": "Hi", "max_tokens": 1.5}, {}):
        response = client.post("/api/chat", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert client.post("/api/chat", json={"prompt": "   "}).json()["error"]["message"] == (
        "prompt must be a non-empty string."
    )
    assert offline_env.requests == []


@pytest.mark.parametrize(
    ("method", "path", "who", "request_args"),
    [
        ("POST", "/api/chat", "uma", {"json": {"prompt": "Hi", "max_tokens": 0}}),
        ("POST", "/api/long", "paul", {"json": {"prompt": "Hi", "max_tokens": 0}}),
        ("GET", "/api/chat/stream", "uma", {"params": {"prompt": "Hi", "max_tokens": 0}}),
    ],
)
def test_max_tokens_zero_reaches_the_governed_client_and_is_refused(
    login: Callable[[str], TestClient],
    offline_env: FakeClaude,
    method: str,
    path: str,
    who: str,
    request_args: dict[str, Any],
) -> None:
    """0 is not "no value": the route passes it on (no default replaces it) and the governed client refuses it."""
    response = login(who).request(method, path, **request_args)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens must be between 1 and" in response.json()["error"]["message"]
    assert offline_env.requests == []


def test_claude_errors_pass_through(login: Callable[[str], TestClient], offline_env: FakeClaude) -> None:
    offline_env.script_error(400, "invalid_request_error", "messages: too long")
    response = login("uma").post("/api/chat", json={"prompt": "Hi"})
    assert response.status_code == 400
    assert response.json()["error"] == {"type": "invalid_request_error", "message": "messages: too long"}


def test_openapi_documents_the_errors(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in [("/api/chat", "post"), ("/api/long", "post"), ("/api/chat/stream", "get"), ("/admin", "get")]:
        assert {"401", "403", "429"} <= set(paths[path][method]["responses"]), path
    assert "401" not in paths["/api/models"]["get"]["responses"]


def _spend_some(client: TestClient, fake: FakeClaude) -> None:
    for user, usage, _ in SCRIPTED:
        fake.script_usage(usage)
        client.post("/login", json={"username": user})
        assert client.post("/api/chat", json={"prompt": "Hi"}).status_code == 200


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_spend_admin_page_ledger_and_cli_agree(
    request: pytest.FixtureRequest, offline_env: FakeClaude, storage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if storage == "redis":
        request.getfixturevalue("redis_env")
    from examples.fastapi_app import create_app

    app = create_app()
    with TestClient(app) as client:
        _spend_some(client, offline_env)
        rbac = app.state.rbac
        rbac.flush()
        for user in ("vera", "uma", "paul"):
            client.post("/login", json={"username": user})
            refused = client.get("/admin")
            assert refused.status_code == 403
            assert "data-micro-dollars" not in refused.text
        client.post("/login", json={"username": "ada"})
        page = client.get("/admin")
        assert page.status_code == 200
        assert page_figures(page.text) == report_figures(rbac.spend_ledger.report())
        assert page_figures(page.text)[0] == SPENT
        assert "<svg" in page.text
    if storage == "redis":  # the CLI reads what the app wrote, from the same environment
        assert main(["spend", "--json"]) == 0
        printed = json.loads(capsys.readouterr().out)
        cli = {(row["principal"], row["role"]): (Decimal(row["dollars"]), row["calls"]) for row in printed["rows"]}
        assert cli == SPENT


def test_the_demo_page_shows_dollars_left_beside_the_requests(client: TestClient, offline_env: FakeClaude) -> None:
    page = client.get("/").text
    assert 'id="dollars-left"' in page
    assert page.index('id="meter"') < page.index('id="dollars-meter"')
    _spend_some(client, offline_env)
    client.post("/login", json={"username": "uma"})
    (day,) = client.get("/api/me").json()["spend"]
    spent = sum((amount for user, _, amount in SCRIPTED if user == "uma"), Decimal(0))
    assert (day["scope"], day["period"], day["limit"]) == ("principal", "day", "0.5")
    assert Decimal(day["remaining"]) == Decimal("0.5") - spent
    client.post("/login", json={"username": "vera"})
    assert client.get("/api/me").json()["spend"] == []
