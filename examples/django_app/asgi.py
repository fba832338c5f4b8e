"""The ASGI app: ``uvicorn examples.django_app.asgi:application --port 8001``.

One process (the database is the process's own, see :mod:`examples.django_app.database`), migrated and
seeded here, at startup. The example's views are sync: Django runs them in a thread, with ``request.claude``.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from .database import prepare

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")

application = get_asgi_application()
prepare()
