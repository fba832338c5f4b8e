"""The WSGI app ``python -m examples.django_app`` (runserver) serves, and ``gunicorn examples.django_app.wsgi``.

Serve it with one process; threads are fine (``gunicorn --threads 8 examples.django_app.wsgi``): the database
is the process's own (see :mod:`examples.django_app.database`), migrated and seeded here, at startup.
When the ``OTEL_*`` variables export spans, each request gets a SERVER span (see :mod:`examples.telemetry`),
so the route guard's ``claude_rbac.authorize`` span and the SDK's call span land in the request's trace.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from examples.telemetry import configure_telemetry_from_env, wsgi_server_spans

from .database import prepare

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")

application = get_wsgi_application()
prepare()
if configure_telemetry_from_env().traces:
    application = wsgi_server_spans(application)
