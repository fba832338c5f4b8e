"""The Django example, started with its one command (``python -m examples.django_app``) against a FakeClaude.

It runs in a process of its own, so its settings never meet the Django settings of other tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from tests.support.redis import delete_prefix, unique_prefix

from claude_rbac.cli import main
from claude_rbac.quota import SpendLedger
from claude_rbac.testing import FakeClaude
from examples.common import DEMO_USERS
from examples.spend_checks import EXPECTED, SCRIPTED, page_figures, report_figures

ROOT = Path(__file__).resolve().parents[3]
HAIKU, SONNET, OPUS = "claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-7"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def example_env(fake: FakeClaude) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANTHROPIC_", "CLAUDE_RBAC_"))}
    env.update(
        ANTHROPIC_BASE_URL=fake.url,
        CLAUDE_RBAC_KEY_PREFIX=f"claude_rbac_example_{uuid.uuid4().hex[:8]}",
        PYTHONPATH=str(ROOT),
        WEB_CONCURRENCY="1",
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeClaude]:
    with FakeClaude() as fake:
        yield fake


@contextlib.contextmanager
def serving(fake: FakeClaude, **env: str) -> Iterator[str]:
    """The example, started with its one command, on a free port; ``env`` adds to :func:`example_env`."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "examples.django_app", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env={**example_env(fake), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else "exited"
            assert time.monotonic() < deadline, "the example did not start within 20 s"
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture(scope="module")
def server(fake: FakeClaude) -> Iterator[str]:
    with serving(fake) as url:
        yield url


@pytest.fixture
def http(server: str, fake: FakeClaude) -> Iterator[httpx.Client]:
    fake.reset()
    with httpx.Client(base_url=server, timeout=10) as client:
        yield client


@contextlib.contextmanager
def signed_in(server: str, username: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=10) as client:
        response = client.post("/login", json={"username": username})
        assert response.json() == {"user": username, "role": DEMO_USERS[username]}
        yield client


def test_home_page_and_anonymous_access(http: httpx.Client, fake: FakeClaude) -> None:
    page = http.get("/")
    assert page.status_code == 200
    assert '<form id="login">' in page.text
    assert http.get("/api/me").json() == {"user": None, "role": None, "rate_limits": []}
    chat = http.post("/api/chat", json={"prompt": "hi"})
    assert chat.status_code == 401
    assert chat.json()["error"] == {
        "type": "authentication_error",
        "message": "Sign in to use this route.",
        "error_code": "unauthenticated",
    }
    assert http.get("/admin").status_code == 401
    assert http.post("/login", json={"username": "mallory"}).status_code == 401
    assert fake.count() == 0


def test_user_chats_within_the_role(server: str, fake: FakeClaude) -> None:
    fake.reset()
    with signed_in(server, "uma") as uma:
        me = uma.get("/api/me").json()
        assert (me["user"], me["role"]) == ("uma", "user")
        assert me["rate_limits"][0]["kind"] == "rpm"
        assert me["rate_limits"][0]["limit"] == 10
        answer = uma.post("/api/chat", json={"prompt": "Say hello", "max_tokens": 5000})
        assert answer.status_code == 200
        assert answer.json()["model"] == HAIKU
        assert answer.json()["text"].startswith("Hello from FakeClaude")
        assert set(answer.json()["usage"]) == {"input_tokens", "output_tokens"}
        denied = uma.post("/api/chat", json={"prompt": "hi", "model": OPUS})
        assert (denied.status_code, denied.json()["error"]["error_code"]) == (403, "model_not_allowed")
        assert uma.post("/api/long", json={"prompt": "hi"}).status_code == 403
        assert uma.get("/admin").status_code == 403
        assert uma.post("/api/chat", json={}).json()["error"]["type"] == "invalid_request_error"
    (sent,) = fake.calls()
    assert sent.json["messages"] == [{"role": "user", "content": "Say hello"}]
    assert sent.json["max_tokens"] == 512  # clamped to the user role's cap


@pytest.mark.parametrize(("path", "who"), [("/api/chat", "uma"), ("/api/long", "paul")])
def test_max_tokens_zero_reaches_the_governed_client_and_is_refused(
    server: str, fake: FakeClaude, path: str, who: str
) -> None:
    """0 is not "no value": the view passes it on and the governed client refuses it; null takes the default."""
    fake.reset()
    with signed_in(server, who) as client:
        response = client.post(path, json={"prompt": "hi", "max_tokens": 0})
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert "max_tokens must be between 1 and" in response.json()["error"]["message"]
        assert fake.count() == 0
        assert client.post(path, json={"prompt": "hi", "max_tokens": None}).status_code == 200
    assert fake.count() == 1


def test_viewer_may_not_call_claude(server: str, fake: FakeClaude) -> None:
    fake.reset()
    with signed_in(server, "vera") as vera:
        response = vera.post("/api/chat", json={"prompt": "hi"})
        assert (response.status_code, response.json()["error"]["error_code"]) == (403, "role_insufficient")
        forged = vera.get("/admin", params={"role": "admin"}, headers={"X-Role": "admin", "X-User": "ada"})
        assert forged.status_code == 403
        vera.cookies.set("role", "admin")
        vera.cookies.set("username", "ada")
        assert vera.get("/api/me").json()["role"] == "viewer"
    assert fake.count() == 0


def test_power_user_gets_the_long_route_with_opus_only(server: str, fake: FakeClaude) -> None:
    fake.reset()
    with signed_in(server, "paul") as paul:
        answer = paul.post("/api/long", json={"prompt": "Explain"})
        assert (answer.status_code, answer.json()["model"]) == (200, OPUS)
        narrowed = paul.post("/api/long", json={"prompt": "Explain", "model": SONNET})
        assert (narrowed.status_code, narrowed.json()["error"]["error_code"]) == (403, "model_not_allowed")
    assert [call.json["model"] for call in fake.calls()] == [OPUS]


def test_admin_page_for_admins(server: str) -> None:
    with signed_in(server, "ada") as ada:
        page = ada.get("/admin")
        assert page.status_code == 200
        assert "<td>admin</td>" in page.text
        assert ada.post("/logout").json() == {"ok": True}
        assert ada.get("/admin").status_code == 401


def test_stream_relays_claude_events(server: str, fake: FakeClaude) -> None:
    fake.reset()
    with signed_in(server, "uma") as uma:
        response = uma.get("/api/chat/stream", params={"prompt": "Stream please"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("event: ") for line in response.text.splitlines() if line.startswith("event: ")]
        assert events[0] == "message_start"
        assert events[-1] == "message_stop"
        assert "content_block_delta" in events
        denied = uma.get("/api/chat/stream", params={"prompt": "hi", "model": SONNET})
        assert (denied.status_code, denied.headers["content-type"]) == (403, "application/json")
    (sent,) = fake.calls()
    assert sent.json["stream"] is True


def test_rpm_limit_is_a_429(server: str, fake: FakeClaude) -> None:
    fake.reset()
    with signed_in(server, "uma") as uma:
        statuses = [uma.post("/api/chat", json={"prompt": "hi"}).status_code for _ in range(11)]
        limited = uma.post("/api/chat", json={"prompt": "hi"})
    assert statuses.count(200) <= 10  # the other tests' calls count against the same minute
    assert statuses[-1] == 429
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert fake.count() == statuses.count(200)


@pytest.mark.parametrize("args", [["check"], ["check", "--database", "default"]], ids=["check", "with-database"])
def test_manage_py_check_passes(fake: FakeClaude, args: list[str]) -> None:
    """With the database, the group checks run too: no group is named like a role (W005), each mapped one exists."""
    result = subprocess.run(
        [sys.executable, "-m", "examples.django_app", *args],
        cwd=ROOT,
        env=example_env(fake),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def run_example(fake: FakeClaude, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "examples.django_app", *args],
        cwd=ROOT,
        env={**example_env(fake), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


MEMBERSHIPS = (
    "import json; from django.contrib.auth.models import User; "
    "print(json.dumps({u.username: list(u.groups.values_list('name', flat=True)) for u in User.objects.all()}))"
)


def test_extra_demo_users_join_the_group_of_their_role(fake: FakeClaude) -> None:
    result = run_example(fake, "shell", "-c", MEMBERSHIPS, CLAUDE_RBAC_DEMO_EXTRA_USERS="uma2=user,ada2=admin")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {  # Django 5.2's shell prints its imports first
        "vera": ["Readers"],
        "uma": ["Support staff"],
        "paul": ["Research"],
        "ada": ["Platform admins"],
        "uma2": ["Support staff"],
        "ada2": ["Platform admins"],
    }
    unmapped = run_example(fake, "check", CLAUDE_RBAC_DEMO_EXTRA_USERS="root=superadmin")
    assert unmapped.returncode != 0
    assert "no group of the Django example grants role 'superadmin'" in unmapped.stderr


def test_spend_admin_page_ledger_and_cli_agree(
    fake: FakeClaude, example_redis: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """On Redis, so this process reads the ledger the server wrote: the admin page, the ledger and the CLI agree."""
    if not example_redis:
        pytest.skip("no Redis available (CI=true makes this a failure)")
    prefix = unique_prefix()
    try:
        with serving(fake, CLAUDE_RBAC_STORAGE=example_redis, CLAUDE_RBAC_KEY_PREFIX=prefix) as url:
            fake.reset()
            for user, usage, _ in SCRIPTED:
                fake.script_usage(usage)
                with signed_in(url, user) as client:
                    assert client.post("/api/chat", json={"prompt": "hi"}).status_code == 200
            with signed_in(url, "uma") as uma:
                assert uma.get("/admin").status_code == 403
                (day,) = uma.get("/api/me").json()["spend"]
                assert Decimal(day["remaining"]) == Decimal("0.5") - EXPECTED[("uma", "user")][0]
            with signed_in(url, "ada") as ada:
                deadline = time.monotonic() + 10  # the server hands its ledger what waits within a second
                while True:
                    page = ada.get("/admin").text
                    if page_figures(page, labels=True)[0] == EXPECTED or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
        assert page_figures(page, labels=True)[0] == EXPECTED
        ledger = SpendLedger(example_redis, key_prefix=prefix)
        assert page_figures(page) == report_figures(ledger.report())  # the ledger holds the user's pk
        ledger.close()
        assert main(["spend", "--storage", example_redis, "--key-prefix", prefix, "--json"]) == 0
        printed = json.loads(capsys.readouterr().out)
        cli = {(row["principal"], row["role"]): (Decimal(row["dollars"]), row["calls"]) for row in printed["rows"]}
        assert cli == page_figures(page)[0]
    finally:
        delete_prefix(example_redis, prefix)
