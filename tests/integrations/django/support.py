"""Helpers the Django tests share."""

from __future__ import annotations

import json
from typing import Any


def login(user: Any) -> Any:
    """Django's test client, signed in as ``user`` (a real session in the database)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def post(client: Any, url: str, **body: Any) -> Any:
    """POST ``body`` as JSON with Django's test client."""
    return client.post(url, data=json.dumps(body), content_type="application/json")


def error_of(response: Any) -> dict[str, Any]:
    """The ``error`` object of an Anthropic-shaped JSON error response."""
    assert response["content-type"] == "application/json"
    body = response.json()
    assert body["type"] == "error"
    return dict(body["error"])


def _current_rbac() -> Any:
    """The RBAC built from the current setting, if one was built (never builds one)."""
    from claude_rbac.integrations.django import runtime

    return runtime._rbac


def close_clients() -> None:
    """Close the sync connection pools of the RBAC the test used, before the settings change drops it."""
    rbac = _current_rbac()
    if rbac is not None:
        rbac.close()


async def aclose_clients() -> None:
    """Close the async pools, inside the event loop that opened them (they cannot outlive it)."""
    rbac = _current_rbac()
    if rbac is not None:
        await rbac.aclose()
