"""The example's one-command start and its WSGI entry points, as real processes on 127.0.0.1."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from tests.support.redis import free_port

from claude_rbac.testing import FakeClaude

ROOT = Path(__file__).resolve().parents[3]
ENV_KEYS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_RBAC_POLICY",
    "CLAUDE_RBAC_STORAGE",
    "CLAUDE_RBAC_KEY_PREFIX",
)

pytestmark = pytest.mark.slow


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ENV_KEYS}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


@contextmanager
def running(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def wait_until_serving(url: str, process: subprocess.Popen[str], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {seconds} s")


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
        wait_until_serving(url, process)
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
        wait_until_serving(url, process)
        assert [chat_as(url, "uma") for _ in range(3)] == [200, 200, 200]
        assert chat_as(url, "vera") == 403
    assert fake_claude.count() == 3
    assert all(call.json["model"] == "claude-haiku-4-5" for call in fake_claude.calls())
