"""Runs inside a venv that holds ``claude-rbac[django]`` and nothing else: the README's Django lines in a project.

``python django_project.py DIR``, where DIR holds the README's ``settings.py`` lines, ``rbac.toml`` and
``views.py``. The settings lines extend a minimal existing project, as the README says they do; the script
prints one JSON object of what it saw, which the test asserts on.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import django
from django.conf import settings

here = Path(sys.argv[1])
sys.path.insert(0, str(here))
project = {
    "BASE_DIR": here,
    "SECRET_KEY": "install-matrix-only",
    "ALLOWED_HOSTS": ["testserver"],
    "ROOT_URLCONF": "views",
    "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    "INSTALLED_APPS": ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"],
    "MIDDLEWARE": [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
}
exec((here / "settings.py").read_text(encoding="utf-8"), project)  # the README's lines, as written
settings.configure(**{name: value for name, value in project.items() if name.isupper()})
django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402 - needs the settings above
from django.core.checks import run_checks  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

call_command("migrate", verbosity=0)
uma = User.objects.create_user("uma")
uma.groups.add(Group.objects.create(name="Support staff"))  # the README maps it to "user"
ada = User.objects.create_superuser("ada")


def client(user: User | None) -> Client:
    signed_in = Client()
    if user is not None:
        signed_in.force_login(user)
    return signed_in


seen = {
    "checks": [message.id for message in run_checks() if message.id.startswith("claude_rbac")],
    "anonymous chat": client(None).post("/chat", {"prompt": "hi"}).status_code,
    "uma chat": client(uma).post("/chat", {"prompt": "hi"}).json(),
    "uma usage": client(uma).get("/usage").status_code,
    "ada usage": client(ada).get("/usage").json(),
    "ada long": client(ada).post("/long", {"prompt": "think"}).status_code,
}
print(json.dumps(seen))
