"""Fixtures for the Django integration tests. Django is configured lazily, for this directory only."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from claude_rbac.testing import FakeClaude

from . import project
from .support import close_clients


@pytest.fixture(scope="session", autouse=True)
def _django_project() -> None:
    project.configure()


@pytest.fixture
def claude_settings(fake_claude: FakeClaude) -> Iterator[Callable[..., Any]]:
    """Apply ``CLAUDE_RBAC`` (the base, pointed at this test's FakeClaude, plus overrides) for the test.

    Returns a function that re-applies it with more overrides, e.g. ``claude_settings(SUPERUSER_ROLE="admin")``.
    """
    from django.test import override_settings

    active: list[Any] = []

    def apply(**overrides: Any) -> dict[str, Any]:
        if active:
            close_clients()  # the new setting drops the RBAC built from the old one
        value = {**project.BASE_CLAUDE_RBAC, "BASE_URL": fake_claude.url, **overrides}
        override = override_settings(CLAUDE_RBAC=value)
        override.enable()
        active.append(override)
        return value

    apply()
    yield apply
    close_clients()
    for override in reversed(active):
        override.disable()


@pytest.fixture
def make_user(_django_project: None) -> Iterator[Callable[..., Any]]:
    """Create a user (deleted after the test): ``make_user(role="power")``, ``make_user(groups=[USERS])``.

    ``role`` is the Claude role field (``ROLE_ATTRIBUTE``); ``app_role`` the app's own ``role`` field.
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    created: list[Any] = []

    def make(
        *, role: str = "", app_role: str = "", groups: tuple[str, ...] | list[str] = (), superuser: bool = False
    ) -> Any:
        model = get_user_model()
        user = model.objects.create_user(
            username=f"u-{uuid.uuid4().hex[:10]}", claude_role=role, role=app_role, is_superuser=superuser
        )
        for name in groups:
            group, _ = Group.objects.get_or_create(name=name)
            user.groups.add(group)
        created.append(user)
        return user

    yield make
    for user in created:
        user.delete()
    Group.objects.all().delete()


@pytest.fixture
def client(claude_settings: Callable[..., Any]) -> Any:
    """Django's test client, anonymous, with this test's ``CLAUDE_RBAC``."""
    from django.test import Client

    return Client()
