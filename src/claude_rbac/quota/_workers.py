"""Noticing a multi-process deployment, to warn about limits kept in per-process memory.

``memory://`` counts in each worker separately: with 4 workers, rpm=10 admits 40. claude_rbac
cannot see the server's configuration, so it reads the usual signs: gunicorn's or uvicorn's
``--workers``/``-w`` on the command line, ``GUNICORN_CMD_ARGS`` and ``WEB_CONCURRENCY``.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Mapping, Sequence

__all__ = ["detect_workers", "warn_if_memory_in_many_workers"]

log = logging.getLogger("claude_rbac")
SERVERS = ("gunicorn", "uvicorn", "hypercorn", "granian", "daphne")


def _workers_flag(argv: Sequence[str]) -> int | None:
    for index, arg in enumerate(argv):
        for flag in ("--workers", "-w"):
            if arg == flag and index + 1 < len(argv) and argv[index + 1].isdigit():
                return int(argv[index + 1])
            if arg.startswith(f"{flag}=") and arg.split("=", 1)[1].isdigit():
                return int(arg.split("=", 1)[1])
            if flag == "-w" and arg.startswith("-w") and arg[2:].isdigit():
                return int(arg[2:])
    return None


def detect_workers(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> tuple[str, int]:
    """(server, worker count) as far as the process can tell; ("", 1) when it looks single-process."""
    argv = list(sys.argv if argv is None else argv)
    environ = os.environ if environ is None else environ
    joined = " ".join(argv[:2]).lower()
    server = next((name for name in SERVERS if name in joined), "")
    workers = _workers_flag(argv)
    if workers is None and "GUNICORN_CMD_ARGS" in environ:
        workers = _workers_flag(shlex.split(environ["GUNICORN_CMD_ARGS"]))
        server = server or "gunicorn"
    if workers is None and environ.get("WEB_CONCURRENCY", "").isdigit():
        workers = int(environ["WEB_CONCURRENCY"])
    return server, workers or 1


def warn_if_memory_in_many_workers(storage_uri: str) -> bool:
    """Log one warning when ``memory://`` storage runs under a multi-worker server. True if it warned."""
    if not storage_uri.startswith("memory://"):
        return False
    server, workers = detect_workers()
    if workers <= 1:
        return False
    log.warning(
        "claude_rbac: storage is memory:// but %s runs %d workers: each worker counts its own limits, so rpm=10 "
        "admits up to %d a minute. Use a shared storage, e.g. RBAC(..., storage='redis://host:6379/0').",
        server or "the server",
        workers,
        10 * workers,
    )
    return True
