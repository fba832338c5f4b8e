"""``make demo`` (``python -m examples.fastapi_app``) and ``uvicorn --workers``, as real processes on 127.0.0.1."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import httpx
import pytest
from tests.support.redis import free_port

from claude_rbac.testing import FakeClaude
from examples.backend import PLACEHOLDER_KEY
from examples.processes import clean_env, running, stop, wait_until_serving

pytestmark = pytest.mark.slow


def read_lines(process: subprocess.Popen[str], count: int, seconds: float = 15) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + seconds
    while len(lines) < count and time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            lines.append(process.stdout.readline().rstrip("\n"))
    return lines


def test_make_demo_starts_offline_prints_the_url_and_traces_to_the_console() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "examples.fastapi_app", "--port", str(port)]
    with running(command, clean_env(CLAUDE_RBAC_DEMO_TRACES="console")) as process:
        banner = read_lines(process, 10)
        assert banner[0] == f"claude_rbac FastAPI demo on {url}/  (open it in a browser)"
        assert banner[1].startswith("Claude: FakeClaude (offline) at http://127.0.0.1:")
        curls = [line for line in banner if line.strip().startswith("curl ")]
        assert len(curls) == 5
        assert all(url in line for line in curls)
        wait_until_serving(url, process, seconds=20)

        with httpx.Client(base_url=url, timeout=5) as http:
            assert "claude_rbac demo" in http.get("/").text
            assert http.post("/login", data={"username": "paul"}).json() == {"user": "paul", "role": "power"}
            assert http.post("/api/long", json={"prompt": "Hi"}).json()["model"] == "claude-opus-4-7"
            with http.stream("GET", "/api/chat/stream", params={"prompt": "Hi"}) as stream:
                body = "".join(stream.iter_text())
            assert body.rstrip().endswith('"output_tokens": 10}}')
            assert http.post("/api/chat", json={"prompt": "Hi", "model": "claude-fake-1"}).status_code == 403

        stop(process, signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    assert '"name": "claude_rbac.authorize"' in output, "spans on the console"
    assert '"claude_rbac.decision": "deny"' in output
    assert '"name": "anthropic.messages.create"' in output
    assert PLACEHOLDER_KEY not in output, "a key fingerprint at most, never the key"


@pytest.mark.redis
def test_uvicorn_workers_share_the_limits(fake_claude: FakeClaude, redis_env: str) -> None:
    """``uvicorn examples.fastapi_app:app --workers 2`` with Redis: uma's 10 requests a minute, across both."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env(
        ANTHROPIC_BASE_URL=fake_claude.url,
        CLAUDE_RBAC_STORAGE=os.environ["CLAUDE_RBAC_STORAGE"],
        CLAUDE_RBAC_KEY_PREFIX=redis_env,
    )
    command = [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--workers", "2", "--port", str(port)]
    with running(command, env) as process:
        wait_until_serving(url, process, seconds=30)
        with httpx.Client(base_url=url, timeout=5) as http:
            assert http.post("/login", json={"username": "uma"}).status_code == 200
            statuses = [
                http.post("/api/chat", json={"prompt": f"Hi {i}"}, headers={"connection": "close"}).status_code
                for i in range(12)
            ]
    assert statuses == [200] * 10 + [429] * 2
    assert fake_claude.count() == 10
