"""Over the wire: requests/s with wrk against gunicorn (Flask) and uvicorn (Starlette), bare and guarded.

One worker each, on 127.0.0.1; every variant of ``benchmarks/wire_apps.py`` is served at once and the
wrk runs are interleaved over rounds, so machine noise hits them alike. Needs ``wrk`` (Debian's
package; ``make bench`` installs it when it can).

Run: ``.venv/bin/python -m benchmarks.bench_wire``
"""

from __future__ import annotations

import contextlib
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
from tests.support.redis import free_port
from tests.support.servers import server

BIN = Path(sys.executable).parent
VARIANTS = ["bare", "peer-memory", "peer-redis", "guard", "bare-call", "guard-call-memory", "guard-call-redis"]
PEER = {"flask": "Flask-Limiter", "starlette": "slowapi"}
LABELS = {
    "bare": "bare route",
    "peer-memory": "{peer} (memory)",
    "peer-redis": "{peer} (Redis)",
    "guard": "claude_rbac guard",
    "bare-call": "bare route + plain SDK call (in-process answer)",
    "guard-call-memory": "claude_rbac guard + governed call (memory)",
    "guard-call-redis": "claude_rbac guard + governed call (Redis)",
}


def _argv(framework: str, port: int) -> list[str]:
    if framework == "flask":
        return [
            str(BIN / "gunicorn"),
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "benchmarks.wire_apps:flask_app",
        ]
    return [
        str(BIN / "uvicorn"),
        "benchmarks.wire_apps:starlette_app",
        "--workers",
        "1",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


@contextlib.contextmanager
def serving(framework: str) -> Iterator[dict[str, str]]:
    """Every variant served at once; yields variant -> URL."""
    with contextlib.ExitStack() as stack:
        urls = {}
        for variant in VARIANTS:
            port = free_port()
            env = {"BENCH_FRAMEWORK": framework, "BENCH_VARIANT": variant}
            urls[variant] = stack.enter_context(server(_argv(framework, port), port, env, ready_path="/chat"))
        yield urls


def _cookie(url: str) -> str:
    response = httpx.post(f"{url}/login", data={"username": "uma"})
    response.raise_for_status()
    return f"session={response.cookies['session']}"


def wrk(url: str, cookie: str, seconds: int, connections: int = 16) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-H", f"Cookie: {cookie}", f"{url}/chat"],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"{url}: non-2xx responses under load:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match is not None, out
    return float(match.group(1))


def measure(framework: str, rounds: int = 5, seconds: int = 3) -> str:
    with serving(framework) as urls:
        cookies = {variant: _cookie(url) for variant, url in urls.items()}
        for variant, url in urls.items():  # warm up, and prove each route answers 200 for uma
            assert httpx.get(f"{url}/chat", headers={"Cookie": cookies[variant]}).status_code == 200, variant
            wrk(url, cookies[variant], 1)
        samples: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        for _ in range(rounds):
            for variant, url in urls.items():
                samples[variant].append(wrk(url, cookies[variant], seconds))
    bare, bare_call = statistics.median(samples["bare"]), statistics.median(samples["bare-call"])
    lines = ["| route | requests/s median | min | max | vs its bare route |", "| --- | ---: | ---: | ---: | ---: |"]
    for variant in VARIANTS:
        values = samples[variant]
        base = bare_call if "call" in variant else bare
        label = LABELS[variant].format(peer=PEER[framework])
        lines.append(
            f"| {label} | {statistics.median(values):,.0f} | {min(values):,.0f} | {max(values):,.0f} | "
            f"{statistics.median(values) / base:.2f}x |"
        )
    return "\n".join(lines)


def main() -> str:
    if shutil.which("wrk") is None:
        return "_wrk is not installed: the over-the-wire table was not measured (`apt-get install wrk`)._"
    return "\n\n".join(
        [
            "### gunicorn (1 sync worker), Flask: requests/s with wrk -t1 -c16",
            measure("flask"),
            "### uvicorn (1 worker, h11, asyncio), Starlette: requests/s with wrk -t1 -c16",
            measure("starlette"),
        ]
    )


if __name__ == "__main__":
    print(main())
