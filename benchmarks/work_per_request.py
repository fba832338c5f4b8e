"""Work per request that a noisy machine cannot blur: Python function calls and garbage collections.

Drives ``benchmarks/wire_apps.py``'s Flask app in-process (direct WSGI calls, Claude answered in-process),
as the over-the-wire matrix serves it, and counts per request the Python function calls (``cProfile``'s
total: deterministic for a given code and data) and the collector's runs per generation. Times on a shared
machine move by tens of percent between runs; these counts do not, so they show what a change removed.

Run: ``.venv/bin/python -m benchmarks.work_per_request`` (``--root DIR`` measures another checkout's
``src`` and ``benchmarks``, e.g. a ``git worktree`` of an older commit, with this environment).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.support.redis import delete_prefix

CASES = [
    ("plain-call", "memory", "rpm", 1_000),
    ("governed", "memory", "rpm", 1_000),
    ("governed", "memory", "rpm", 100_000),
    ("governed", "memory", "tokens", 1_000),
    ("governed", "redis", "rpm", 1_000),
    ("governed", "redis", "tokens", 1_000),
    ("governed", "redis", "tokens", 100_000),
]
REQUESTS = 3_000

_CHILD = """
import cProfile, gc, io, pstats, sys
sys.path[:0] = [sys.argv[1] + "/src", sys.argv[1]]
import benchmarks.wire_apps as apps
app = apps.flask_app
client = app.test_client()
client.post("/login", data={"username": "uma"})
client.post("/_prefill")
cookie = client.get_cookie("session").value
environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/chat", "SERVER_NAME": "bench", "SERVER_PORT": "80",
           "wsgi.url_scheme": "http", "HTTP_COOKIE": "session=" + cookie, "wsgi.input": io.BytesIO(),
           "SERVER_PROTOCOL": "HTTP/1.1"}
def started(status, headers, exc_info=None):
    assert status.startswith("200"), status
def request():
    for _ in app.wsgi_app(dict(environ), started):
        pass
for _ in range(3000):
    request()
runs = [0, 0, 0]
def counted(phase, info):
    if phase == "start":
        runs[info["generation"]] += 1
gc.callbacks.append(counted)
n = int(sys.argv[2])
profile = cProfile.Profile()
profile.enable()
for _ in range(n):
    request()
profile.disable()
print(pstats.Stats(profile).total_calls / n, *(count * 1000 / n for count in runs))
"""


def measure(root: Path, variant: str, storage: str, limits: str, users: int) -> tuple[float, ...]:
    prefix = f"work-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "BENCH_FRAMEWORK": "flask",
        "BENCH_VARIANT": variant,
        "BENCH_STORAGE": storage,
        "BENCH_LIMITS": limits,
        "BENCH_USERS": str(users),
        "BENCH_KEY_PREFIX": prefix,
    }
    try:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(root), str(REQUESTS)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        if storage == "redis":  # the day budgets' keys would otherwise stay for a day
            delete_prefix(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"), prefix)
    return tuple(float(value) for value in out.stdout.split())


def table(root: Path) -> str:
    rows = [
        "| route | storage | limits | users | Python calls/request | over the plain call | "
        "gen0 / gen1 / gen2 collections per 1,000 requests |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    plain = None
    for variant, storage, limits, users in CASES:
        calls, *runs = measure(root, variant, storage, limits, users)
        plain = calls if plain is None else plain
        label = "plain SDK call" if variant == "plain-call" else "guard + governed call"
        rows.append(
            f"| {label} | {storage} | {limits} | {users:,} | {calls:,.0f} | +{calls - plain:,.0f} | "
            + " / ".join(f"{run:.0f}" for run in runs)
            + " |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    print(table(parser.parse_args().root))


if __name__ == "__main__":
    main()
