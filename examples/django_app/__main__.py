"""``python -m examples.django_app [manage.py arguments]``; with none, the dev server on 127.0.0.1:8001.

The database is migrated and the demo users created before the command runs, so ``check --database default``
sees the example's groups (claude_rbac.W005, W006) and ``runserver`` starts with its users in place.
"""

from __future__ import annotations

import os
import sys

DEFAULT_COMMAND = ["runserver", "127.0.0.1:8001", "--noreload"]


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")
    import django
    from django.core.management import execute_from_command_line

    from .database import prepare

    django.setup()
    prepare()
    args = sys.argv[1:] if argv is None else argv
    execute_from_command_line(["python -m examples.django_app", *(args or DEFAULT_COMMAND)])


if __name__ == "__main__":
    main()
