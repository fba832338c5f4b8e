"""Real multi-worker servers on 127.0.0.1 for tests: start in their own process group, wait, and clean up."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from tests.support.redis import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@contextlib.contextmanager
def server(
    argv: list[str], port: int, env: Mapping[str, str], *, ready_path: str = "/api/me", timeout: float = 60
) -> Iterator[str]:
    """Run ``argv`` (which binds 127.0.0.1:``port``) until the block ends; yields its base URL.

    The server runs in a new session, so stopping it stops every worker; a server that never
    answers fails the test with its own output.
    """
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below; a pipe could fill and block the server
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{argv[0]} exited: {log.read().decode(errors='replace')[-3000:]}")
            try:
                httpx.get(url + ready_path, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[0]} did not answer on {url} in {timeout} s") from None
                time.sleep(0.1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        log.close()


def gunicorn(app: str, env: Mapping[str, str], workers: int = 4) -> contextlib.AbstractContextManager[str]:
    port = free_port()
    argv = [
        str(BIN / "gunicorn"),
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "30",
        "--graceful-timeout",
        "5",
        app,
    ]
    return server(argv, port, env)


def uvicorn(app: str, env: Mapping[str, str], workers: int = 4) -> contextlib.AbstractContextManager[str]:
    port = free_port()
    argv = [
        str(BIN / "uvicorn"),
        app,
        "--workers",
        str(workers),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--timeout-graceful-shutdown",
        "5",
    ]
    return server(argv, port, env)
