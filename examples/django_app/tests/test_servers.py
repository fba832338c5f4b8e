"""The example under runserver, gunicorn with several threads and uvicorn (ASGI), as real processes on 127.0.0.1.

Each server process migrates its own SQLite file and creates the demo users at startup; concurrent sign-ins
and guarded calls from many threads then share it (Django gives each thread its own connection).
"""

from __future__ import annotations

import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from tests.support.redis import free_port

from claude_rbac.testing import FakeClaude
from examples.common import DEMO_USERS
from examples.processes import clean_env, running, stop, wait_until_serving

pytestmark = pytest.mark.slow

SERVERS = {
    "runserver": ["examples.django_app", "runserver", "--noreload"],
    "gunicorn-threads": ["gunicorn", "--workers", "1", "--threads", "8", "examples.django_app.wsgi"],
    "uvicorn-asgi": ["uvicorn", "examples.django_app.asgi:application"],
}
EXPECTED = {"vera": 403, "uma": 200, "paul": 200, "ada": 200}
"""POST /api/chat by role: the viewer may not call Claude, the others may (haiku)."""


def bind(server: str, port: int) -> list[str]:
    if server == "runserver":
        return [f"127.0.0.1:{port}"]
    return ["--bind", f"127.0.0.1:{port}"] if server.startswith("gunicorn") else ["--port", str(port)]


def sign_in_and_chat(url: str, username: str) -> tuple[str, str | None, str | None, int]:
    with httpx.Client(base_url=url, timeout=10) as client:
        signed_in = client.post("/login", json={"username": username}).json()
        me = client.get("/api/me").json()
        assert me["user"] == signed_in["user"] == username
        chat = client.post("/api/chat", json={"prompt": "hi"})
        return username, signed_in["role"], me["role"], chat.status_code


@pytest.mark.parametrize("server", SERVERS)
def test_concurrent_sign_ins_under_the_server(server: str, fake_claude: FakeClaude, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", *SERVERS[server], *bind(server, port)]
    env = clean_env(ANTHROPIC_BASE_URL=fake_claude.url, WEB_CONCURRENCY="1", TMPDIR=str(tmp_path))
    with running(command, env) as process:
        wait_until_serving(url, process, seconds=20)
        (database,) = tmp_path.glob("claude_rbac_django_example-*/db.sqlite3")
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda name: sign_in_and_chat(url, name), list(EXPECTED) * 4))
        stop(process, signal.SIGINT)  # Ctrl-C: the server stops, and the process deletes its database
        assert process.wait(timeout=15) is not None
    assert not database.parent.exists()
    assert {(name, role, status) for name, role, _, status in answers} == {
        (name, DEMO_USERS[name], status) for name, status in EXPECTED.items()
    }
    assert all(signed_in == seen for _, signed_in, seen, _ in answers), "a session lost its user"
    assert fake_claude.count() == 12
