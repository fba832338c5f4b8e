"""An app served from a venv, as its README section says to serve it, and a stdlib HTTP client to call it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

from tests.support.redis import free_port

from .venvs import Venv


@dataclass
class Served:
    url: str
    output: str = ""
    """What the server printed, once it has stopped."""


@contextlib.contextmanager
def serving(
    venv: Venv, command: Sequence[str], *, cwd: Path, env: Mapping[str, str], stop: int = signal.SIGTERM
) -> Iterator[Served]:
    """Run ``command`` (from the venv's bin/) with ``--port`` added until the block ends, then send it ``stop``."""
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below; a pipe could fill and block the server
    program = venv.bin(command[0])
    assert program.exists(), f"{command[0]} is not installed by the section's install line: {venv.requirements}"
    process = subprocess.Popen(
        [str(program), *command[1:], "--port", str(port)],
        cwd=cwd,
        env=venv.env(env),
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    served = Served(f"http://127.0.0.1:{port}")

    def output() -> str:
        log.seek(0)
        return log.read().decode(errors="replace")

    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"{' '.join(command)} exited:\n{output()[-3000:]}"
            assert time.monotonic() < deadline, f"{' '.join(command)} did not listen on {port}:\n{output()[-3000:]}"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.1)
        yield served
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, stop)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        served.output = output()
        log.close()


class Browser:
    """One user's cookies against one server, through urllib alone."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def post(self, path: str, *, form: Mapping[str, str] | None = None, json_body: Any = None) -> tuple[int, Any]:
        """POST and return (status, the JSON body)."""
        headers = {}
        data = b""
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read() or b"null")
