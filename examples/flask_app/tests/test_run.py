"""The example's one-command start and its WSGI entry points, as real processes on 127.0.0.1."""

from __future__ import annotations

import select
import sys

import httpx
import pytest
from tests.support.redis import free_port

from claude_rbac.testing import FakeClaude
from examples.processes import clean_env, running, wait_until_serving

pytestmark = pytest.mark.slow


def chat_as(url: str, username: str) -> int:
    with httpx.Client(base_url=url, timeout=5) as client:
        assert client.post("/login", json={"username": username}).status_code == 200
        return client.post("/api/chat", json={"prompt": "hi"}).status_code


def test_python_m_starts_it_offline_and_prints_the_url() -> None:
    port = free_port()
    command = [sys.executable, "-m", "examples.flask_app", "--port", str(port)]
    with running(command, clean_env()) as process:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 15)
        assert ready, "nothing printed"
        assert process.stdout.readline().strip() == f"claude_rbac Flask example on http://127.0.0.1:{port}/"
        assert process.stdout.readline().startswith("Claude: FakeClaude (offline)")
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, process, seconds=15)
        assert 'name="username"' in httpx.get(url, timeout=5).text
        assert chat_as(url, "uma") == 200
        assert chat_as(url, "vera") == 403


def test_gunicorn_serves_the_app_factory(fake_claude: FakeClaude) -> None:
    """Two workers, one shared secret: a session from one worker is good on the other."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "examples.flask_app:create_app()",
    ]
    with running(command, clean_env(ANTHROPIC_BASE_URL=fake_claude.url)) as process:
        wait_until_serving(url, process, seconds=15)
        assert [chat_as(url, "uma") for _ in range(3)] == [200, 200, 200]
        assert chat_as(url, "vera") == 403
    assert fake_claude.count() == 3
    assert all(call.json["model"] == "claude-haiku-4-5" for call in fake_claude.calls())
