"""The Django example: the shared JSON API of the example apps, guarded by claude_rbac.

Start it with ``python -m examples.django_app`` (http://127.0.0.1:8001, offline with FakeClaude unless
ANTHROPIC_API_KEY is set). Any other arguments go to Django's manage.py, e.g. ``python -m examples.django_app check``.
"""
