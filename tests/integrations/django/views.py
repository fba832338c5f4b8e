"""The views the tests drive: sync and async function views, class-based views, and misuses."""

from __future__ import annotations

import json
from typing import Any

import anthropic
from django.http import HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View

from claude_rbac.integrations.django import RoleRequiredMixin, requires_role

from .project import HAIKU, OPUS, SONNET


def _ask(request: Any, default_model: str = HAIKU) -> dict[str, Any]:
    body = json.loads(request.body or b"{}")
    return {
        "model": body.get("model", default_model),
        "max_tokens": body.get("max_tokens", 64),
        "messages": [{"role": "user", "content": body.get("prompt", "Hello")}],
    }


def _answer(request: Any, message: Any) -> JsonResponse:
    principal = request.principal
    return JsonResponse(
        {
            "text": message.content[0].text,
            "model": message.model,
            "user": principal.id,
            "role": principal.role,
        }
    )


def whoami(request: Any) -> JsonResponse:
    principal = request.principal
    return JsonResponse({"principal": None if principal is None else [principal.id, principal.role]})


@requires_role("user")
def client_types(request: Any) -> JsonResponse:
    return JsonResponse({"sync": isinstance(request.claude, anthropic.Anthropic)})


@requires_role("user")
async def aclient_types(request: Any) -> JsonResponse:
    return JsonResponse({"async": isinstance(await request.aclaude(), anthropic.AsyncAnthropic)})


def unguarded_chat(request: Any) -> JsonResponse:
    return _answer(request, request.claude.messages.create(**_ask(request)))


@requires_role("user")
def chat(request: Any) -> JsonResponse:
    return _answer(request, request.claude.messages.create(**_ask(request)))


@requires_role("user", rpm=2)
def limited_chat(request: Any) -> JsonResponse:
    return _answer(request, request.claude.messages.create(**_ask(request)))


@requires_role("power", models=["claude-opus-*"], max_tokens=100)
def long_answer(request: Any) -> JsonResponse:
    return _answer(request, request.claude.messages.create(**_ask(request, OPUS)))


@requires_role("admin")
def admin_page(request: Any) -> HttpResponse:
    return HttpResponse("<h1>admin</h1>")


@requires_role("user")
async def achat(request: Any) -> JsonResponse:
    claude = await request.aclaude()
    return _answer(request, await claude.messages.create(**_ask(request)))


@requires_role("user")
async def async_view_using_sync_client(request: Any) -> JsonResponse:
    return _answer(request, request.claude.messages.create(**_ask(request)))


class Report(RoleRequiredMixin, View):
    required_role = "power"

    def post(self, request: Any) -> JsonResponse:
        return _answer(request, request.claude.messages.create(**_ask(request, SONNET)))


class AsyncReport(RoleRequiredMixin, View):
    required_role = "power"
    claude_models = ("claude-sonnet-*",)

    async def post(self, request: Any) -> JsonResponse:
        claude = await request.aclaude()
        return _answer(request, await claude.messages.create(**_ask(request, SONNET)))


class AdminOnlyGet(View):
    @method_decorator(requires_role("admin"))
    def get(self, request: Any) -> HttpResponse:
        return HttpResponse("admin via method_decorator")


@method_decorator(requires_role("user"), name="dispatch")
class UserDispatch(View):
    def post(self, request: Any) -> JsonResponse:
        return _answer(request, request.claude.messages.create(**_ask(request)))


class AsyncUserPost(View):
    @method_decorator(requires_role("user", max_tokens=20))
    async def post(self, request: Any) -> JsonResponse:
        claude = await request.aclaude()
        return _answer(request, await claude.messages.create(**_ask(request)))


async def close_pools(request: Any) -> HttpResponse:
    """Test-only: close the async connection pools inside the server's own event loop before it stops."""
    from .support import aclose_clients

    await aclose_clients()
    return HttpResponse("closed")
