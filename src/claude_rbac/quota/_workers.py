"""Noticing a multi-process deployment, to warn about limits kept in per-process memory.

``memory://`` counts in each worker separately: with 4 workers, rpm=10 admits 40. claude_rbac cannot ask
the server, so it reads where the servers keep the worker count, in gunicorn's order of precedence:
``--workers``/``-w`` on the command line, ``GUNICORN_CMD_ARGS``, ``workers = N`` in gunicorn's config file
(``-c``/``--config``, else ``./gunicorn.conf.py``), then ``WEB_CONCURRENCY`` (gunicorn's and uvicorn's
default). It cannot see replicas a process manager or an orchestrator starts, nor a count computed at
run time (``workers = cpu_count() * 2 + 1`` is reported as set but unreadable).
"""

from __future__ import annotations

import ast
import logging
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = ["WORKER_SOURCES", "Workers", "detect_workers", "find_workers", "warn_if_memory_in_many_workers"]

log = logging.getLogger("claude_rbac")
SERVERS = ("gunicorn", "uvicorn", "hypercorn", "granian", "daphne")
GUNICORN_CONFIG = "gunicorn.conf.py"
WORKER_SOURCES = "--workers/-w, GUNICORN_CMD_ARGS, workers in gunicorn.conf.py (or -c/--config) and WEB_CONCURRENCY"
"""What :func:`find_workers` reads, for messages that must say what they can and cannot see."""


class Workers(NamedTuple):
    server: str
    """``gunicorn``, ``uvicorn``... when the command line names one, else ``""``."""
    processes: int | None
    """Worker processes; 1 when nothing says more; ``None`` when a config file sets it in a way we cannot read."""
    source: str
    """Where the count was read (``"workers = 3 in /srv/app/gunicorn.conf.py"``); ``""`` when nothing set it."""


def _flag(argv: Sequence[str], flags: tuple[str, ...]) -> str | None:
    for index, arg in enumerate(argv):
        for flag in flags:
            if arg == flag and index + 1 < len(argv):
                return argv[index + 1]
            if arg.startswith(f"{flag}="):
                return arg.split("=", 1)[1]
            if len(flag) == 2 and arg.startswith(flag) and len(arg) > 2 and not arg.startswith("--"):
                return arg[2:]
    return None


def _workers_flag(argv: Sequence[str]) -> int | None:
    value = _flag(argv, ("--workers", "-w"))
    return int(value) if value is not None and value.isdigit() else None


def _config_workers(path: Path) -> Workers | None:
    """``workers = N`` at the top level of a gunicorn config file, read without running the file."""
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    found: Workers | None = None
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        value = getattr(node, "value", None)
        if value is None or not any(isinstance(t, ast.Name) and t.id == "workers" for t in targets):
            continue
        if isinstance(value, ast.Constant) and isinstance(value.value, int) and not isinstance(value.value, bool):
            found = Workers("gunicorn", value.value, f"workers = {value.value} in {path}")
        else:
            expression = ast.get_source_segment(source, value) or "an expression"
            found = Workers("gunicorn", None, f"workers = {expression} in {path}")
    return found


def find_workers(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    config_dir: str | os.PathLike[str] | None = None,
) -> Workers:
    """How many worker processes serve the app, as far as the process can tell, and where that was read.

    gunicorn's config file is read when the command line is gunicorn's or names one (``-c``), and from
    ``config_dir`` when given (``manage.py check`` runs where ``gunicorn`` would start: pass the cwd).
    """
    argv = list(sys.argv if argv is None else argv)
    environ = os.environ if environ is None else environ
    joined = " ".join(argv[:2]).lower()
    server = next((name for name in SERVERS if name in joined), "")
    if (workers := _workers_flag(argv)) is not None:
        return Workers(server, workers, "--workers on the command line")
    cmd_args = shlex.split(environ.get("GUNICORN_CMD_ARGS", ""))
    if (workers := _workers_flag(cmd_args)) is not None:
        return Workers(server or "gunicorn", workers, "GUNICORN_CMD_ARGS")
    config = _flag(argv, ("--config", "-c")) or _flag(cmd_args, ("--config", "-c"))
    if config is None and (server == "gunicorn" or config_dir is not None):
        config = str(Path(config_dir or ".") / GUNICORN_CONFIG)
    if config is not None and not config.startswith("python:"):
        from_file = _config_workers(Path(config))
        if from_file is not None:
            return from_file._replace(server=server or "gunicorn")
    if environ.get("WEB_CONCURRENCY", "").isdigit():
        return Workers(server, int(environ["WEB_CONCURRENCY"]), "WEB_CONCURRENCY")
    return Workers(server, 1, "")


def detect_workers(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> tuple[str, int]:
    """(server, worker count) as far as the process can tell; ("", 1) when it looks single-process."""
    found = find_workers(argv, environ)
    return found.server, found.processes or 1


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
