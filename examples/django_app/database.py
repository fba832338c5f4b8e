"""The example's database: SQLite in a directory of the process's own, migrated and seeded when the app starts.

A file, not ``:memory:``: Django gives each thread its own connection, and an in-memory database is one per
connection (a shared-cache one locks whole tables, so concurrent requests fail instead of waiting). The file
is in WAL mode, so readers never wait for the writer (``login()`` records ``last_login``), and it is deleted
when the process exits (Ctrl-C included; a process killed by a signal it does not handle, such as runserver's
SIGTERM, leaves it in the temporary directory). One process serves it: each process would have a database of
its own, and a session from one would not sign anyone in on another.
Threads (``runserver``, ``gunicorn --threads``) and ASGI servers (uvicorn) share the one file.

:func:`prepare` runs at startup: ``python -m examples.django_app`` (before any command, ``check`` included, so
``check --database default`` sees the groups), and the WSGI and ASGI entry points.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_lock = threading.Lock()
_prepared = False


def temporary_path() -> Path:
    """A new directory for this process's database file, removed when this process (not a fork of it) exits."""
    directory = Path(tempfile.mkdtemp(prefix="claude_rbac_django_example-"))
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)
    return directory / "db.sqlite3"


def prepare() -> None:
    """Migrate the database and create the demo users, once per process.

    It runs in a thread of its own: uvicorn imports the ASGI app inside its event loop, where Django refuses
    database calls. That thread's connections are closed at the end (a forked worker must not inherit one).
    """
    global _prepared
    with _lock:
        if _prepared:
            return
        with ThreadPoolExecutor(1, thread_name_prefix="example-database") as pool:
            pool.submit(_migrate_and_seed).result()
        _prepared = True


def _migrate_and_seed() -> None:
    from django.core.management import call_command
    from django.db import connection, connections

    from .demo_users import create_demo_users

    try:
        call_command("migrate", interactive=False, verbosity=0)
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA journal_mode=WAL")  # kept in the file: every later connection uses it
        create_demo_users()
    finally:
        connections.close_all()
