"""The app in Django: ``settings.CLAUDE_RBAC``, ``RBACMiddleware``, ``@requires_role`` and ``request.claude``.

Django's settings are configured once per process, by the Django integration tests' project; this app
overrides only its URLconf, its middleware and ``CLAUDE_RBAC`` while it runs. It is its own URLconf.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.test import Client, override_settings
from django.urls import path

from claude_rbac import Principal
from claude_rbac.integrations.django import requires_role
from claude_rbac.integrations.django import runtime as django_runtime
from tests.integrations.django import project

from ..trail import SENTINEL_KEY
from .common import Reply, answer, bearer, message_args, principal_for, sse

ROUTES = {"/chat": "chat", "/stream": "stream"}  # Django records the URL pattern, which has no leading slash
MIDDLEWARE = ["tests.audit.server_spans.DjangoServerSpanMiddleware", "claude_rbac.integrations.django.RBACMiddleware"]
_SETTING_NAMES = {"policy": "POLICY", "storage": "STORAGE", "key_prefix": "KEY_PREFIX", "base_url": "BASE_URL"}


def api_key() -> str:
    """``CLAUDE_RBAC["API_KEY"]``: a key source of the app's own (a key never goes in settings)."""
    return SENTINEL_KEY


def principal_from_token(request: HttpRequest) -> Principal | None:
    return principal_for(request.headers.get("authorization"))


@requires_role("user")
def chat(request: HttpRequest) -> HttpResponse:
    message = request.claude.messages.create(**message_args(json.loads(request.body)))
    return JsonResponse(answer(message))


@requires_role("user")
def stream(request: HttpRequest) -> HttpResponse:
    opened = request.claude.messages.create(**message_args(json.loads(request.body)), stream=True)
    return StreamingHttpResponse(relay(opened), content_type="text/event-stream")


def relay(opened: Any) -> Iterator[bytes]:
    with opened:
        for event in opened:
            if (chunk := sse(event)) is not None:
                yield chunk


urlpatterns = [path("chat", chat), path("stream", stream)]


def setting(options: Mapping[str, Any]) -> dict[str, Any]:
    """``RBAC(...)`` keyword arguments as the ``CLAUDE_RBAC`` setting a Django project writes."""
    remaining = dict(options)
    if remaining.pop("api_key") != SENTINEL_KEY:
        raise ValueError("the Django app's key source hands out the sentinel key")
    value: dict[str, Any] = {
        "API_KEY": f"{__name__}.api_key",
        "PRINCIPAL_LOADER": f"{__name__}.principal_from_token",
    }
    for name, key in _SETTING_NAMES.items():
        if name in remaining:
            value[key] = remaining.pop(name)
    value["OPTIONS"] = remaining  # meter_provider, logger_provider, mode, audit_user_id...
    return value


class DjangoHarness:
    framework = "django"
    routes = ROUTES
    framework_spans: frozenset[str] = frozenset()

    def __init__(self, options: Mapping[str, Any]) -> None:
        project.configure()
        self._override = override_settings(
            ROOT_URLCONF=__name__, MIDDLEWARE=MIDDLEWARE, CLAUDE_RBAC=setting(options), DEBUG=False
        )
        self._override.enable()
        self.client = Client()

    def post(self, path: str, who: str | None, body: Mapping[str, Any]) -> Reply:
        response = self.client.post(path, data=json.dumps(body), content_type="application/json", headers=bearer(who))
        return Reply(response.status_code, response.content, {k.lower(): v for k, v in response.items()})

    def stream_first_chunk(self, path: str, who: str | None, body: Mapping[str, Any]) -> Reply:
        response = self.client.post(path, data=json.dumps(body), content_type="application/json", headers=bearer(who))
        if not response.streaming:
            return Reply(response.status_code, response.content, {k.lower(): v for k, v in response.items()})
        try:
            first = next(iter(response.streaming_content), b"")
        finally:
            response.close()  # what the server does when the client is gone: close the generator
        return Reply(response.status_code, first, {k.lower(): v for k, v in response.items()})

    def close(self) -> None:
        try:
            rbac = django_runtime._rbac
            if rbac is not None:
                rbac.close()
        finally:
            self._override.disable()


def build(options: Mapping[str, Any]) -> DjangoHarness:
    return DjangoHarness(options)
