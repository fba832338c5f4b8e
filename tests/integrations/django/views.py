"""The views the tests drive: sync and async function views, class-based views, and misuses."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import anthropic
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View

from claude_rbac.integrations.django import RoleRequiredMixin, get_principal, requires_role

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


def unguarded_page(request: Any) -> HttpResponse:
    return HttpResponse("no guard, no principal")


async def aunguarded_page(request: Any) -> HttpResponse:
    return HttpResponse("no guard, no principal")


async def awhoami(request: Any) -> JsonResponse:
    principal = await request.aprincipal()
    return JsonResponse({"principal": None if principal is None else [principal.id, principal.role]})


async def async_view_reading_the_lazy_principal(request: Any) -> JsonResponse:
    return JsonResponse({"role": request.principal.role})


def is_none(request: Any) -> JsonResponse:
    return JsonResponse({"lazy": request.principal == None, "value": get_principal(request) is None})  # noqa: E711


@requires_role("viewer")
@requires_role("user")
def twice_guarded(request: Any) -> HttpResponse:
    return HttpResponse("two guards")


def broken(request: Any) -> HttpResponse:
    raise RuntimeError("a bug in the app")


def whoami(request: Any) -> JsonResponse:
    principal = request.principal  # lazy, like request.user: loaded here, by the first use
    return JsonResponse({"principal": [principal.id, principal.role] if principal else None})


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


# -- the mixin in either order of the bases, and guards on an async view's dispatch -------------------


class MixinFirst(RoleRequiredMixin, View):
    required_role = "admin"

    def get(self, request: Any) -> HttpResponse:
        return HttpResponse(f"admin data for {request.principal.id}")


class ViewFirst(View, RoleRequiredMixin):  # View.dispatch comes first in the MRO and never calls on
    required_role = "admin"

    def get(self, request: Any) -> HttpResponse:
        return HttpResponse(f"admin data for {request.principal.id}")


class AsyncMixinFirst(RoleRequiredMixin, View):
    required_role = "admin"

    async def get(self, request: Any) -> HttpResponse:
        return HttpResponse(f"admin data for {(await request.aprincipal()).id}")


class AsyncViewFirst(View, RoleRequiredMixin):
    required_role = "admin"

    async def get(self, request: Any) -> HttpResponse:
        return HttpResponse(f"admin data for {(await request.aprincipal()).id}")


class ViewFirstWithItsOwnDispatch(View, RoleRequiredMixin):
    required_role = "admin"
    seen: ClassVar[list[str]] = []

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self.seen.append(request.principal.id)  # runs only once the guard let the request in
        return super().dispatch(request, *args, **kwargs)

    def get(self, request: Any) -> HttpResponse:
        return HttpResponse("admin data")


class PowerSubclassOfViewFirst(ViewFirst):
    required_role = "power"


class LoginThenRole(LoginRequiredMixin, RoleRequiredMixin, View):
    required_role = "admin"

    def get(self, request: Any) -> HttpResponse:
        return HttpResponse("admin data")


@method_decorator(requires_role("admin"), name="dispatch")
class AsyncDispatch(View):
    async def get(self, request: Any) -> HttpResponse:
        return HttpResponse(f"admin data for {(await request.aprincipal()).id}")


async def close_pools(request: Any) -> HttpResponse:
    """Test-only: close the async connection pools inside the server's own event loop before it stops."""
    from .support import aclose_clients

    await aclose_clients()
    return HttpResponse("closed")
