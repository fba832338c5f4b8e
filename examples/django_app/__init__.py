"""The Django example: the shared JSON API of the example apps, guarded by claude_rbac, on django.contrib.auth.

Start it with ``python -m examples.django_app`` (http://127.0.0.1:8001, offline with FakeClaude unless
ANTHROPIC_API_KEY is set). Any other arguments go to Django's manage.py, e.g. ``python -m examples.django_app check
--database default``. Also ``gunicorn --threads 8 examples.django_app.wsgi`` and
``uvicorn examples.django_app.asgi:application`` (one process: its SQLite database is the process's own).

The demo users are Django users in groups ("Readers", "Support staff", "Research", "Platform admins"), and
``CLAUDE_RBAC["GROUP_ROLES"]`` maps each group to a policy role (:mod:`examples.django_app.demo_users`).
``POST /login`` signs a demo user in by name, a demo convenience (they have no passwords), with
``django.contrib.auth.login``; the built-in principal loader reads ``request.user`` and its groups.
"""
