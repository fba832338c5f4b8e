"""The example's views: the shared JSON API of the example apps, and two HTML pages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.contrib import auth
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.html import escape
from django.views import View
from django.views.decorators.http import require_GET, require_POST

from claude_rbac import InvalidRequest, NotAuthenticated
from claude_rbac.integrations.django import RoleRequiredMixin, get_principal, get_rbac, requires_role
from examples.common import DEMO_USERS, own_spend
from examples.spend_chart import spend_html

from .demo_users import demo_user, group_for
from .pages import ADMIN_PAGE, INDEX_PAGE

DEFAULT_MODEL = "claude-haiku-4-5"
LONG_MODEL = "claude-opus-4-7"


def _json_body(request: HttpRequest) -> dict[str, Any]:
    if request.content_type != "application/json":
        return dict(request.POST.items())
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise InvalidRequest("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return body


def _message_args(body: dict[str, Any], model: str, max_tokens: int) -> dict[str, Any]:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("prompt is required.")
    return {
        "model": body.get("model") or model,
        # Only a missing max_tokens takes the default: a 0 reaches the governed client, which refuses it.
        "max_tokens": max_tokens if body.get("max_tokens") is None else body["max_tokens"],
        "messages": [{"role": "user", "content": prompt}],
    }


def _answer(message: Any) -> JsonResponse:
    text = "".join(block.text for block in message.content if block.type == "text")
    usage = {"input_tokens": message.usage.input_tokens, "output_tokens": message.usage.output_tokens}
    return JsonResponse({"text": text, "model": message.model, "usage": usage})


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    users = ", ".join(
        f"{escape(user)} ({escape(group_for(role))}: {escape(role)})" for user, role in DEMO_USERS.items()
    )
    return HttpResponse(INDEX_PAGE.replace("{{users}}", users))


@require_POST
def login(request: HttpRequest) -> JsonResponse:
    """Sign a demo user in BY NAME: a demo convenience, since the demo users have no passwords.

    A real app authenticates first (``auth.authenticate(request, username=..., password=...)``, or its SSO)
    and then calls ``auth.login``, as here. The role is what the guards will see: the user's groups, mapped.
    """
    user = demo_user(_json_body(request).get("username"))
    if user is None:
        raise NotAuthenticated("Unknown user.")
    auth.login(request, user)  # a new session (and key), holding the user's id; request.user is the user now
    principal = get_principal(request)
    return JsonResponse({"user": user.get_username(), "role": principal.role if principal else None})


@require_POST
def logout(request: HttpRequest) -> JsonResponse:
    auth.logout(request)
    return JsonResponse({"ok": True})


@require_GET
def me(request: HttpRequest) -> JsonResponse:
    principal = get_principal(request)  # request.principal is lazy (like request.user): never `is None`
    if principal is None:
        return JsonResponse({"user": None, "role": None, "rate_limits": []})
    rbac = get_rbac()
    limits = rbac.rate_limits(principal)
    # The principal's id is the user's primary key (str(user.pk)); people know the user by name.
    user = request.user.get_username() or principal.id
    spend = own_spend(rbac.spend(principal))
    return JsonResponse({"user": user, "role": principal.role, "rate_limits": limits, "spend": spend})


@require_POST
@requires_role("user")
def chat(request: HttpRequest) -> JsonResponse:
    claude = request.claude
    return _answer(claude.messages.create(**_message_args(_json_body(request), DEFAULT_MODEL, 256)))


@require_GET
@requires_role("user")
def chat_stream(request: HttpRequest) -> StreamingHttpResponse:
    """Relays Claude's SSE events as they come. A denial raises here, before the stream starts, so it is JSON."""
    query = {"prompt": request.GET.get("prompt"), "model": request.GET.get("model")}
    claude = request.claude
    stream = claude.messages.create(stream=True, **_message_args(query, DEFAULT_MODEL, 256))

    def relay() -> Iterator[str]:
        with stream:
            for event in stream:
                yield f"event: {event.type}\ndata: {event.to_json(indent=None)}\n\n"

    response = StreamingHttpResponse(relay(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@require_POST
@requires_role("power", models=["claude-opus-*"])
def long_answer(request: HttpRequest) -> JsonResponse:
    claude = request.claude
    return _answer(claude.messages.create(**_message_args(_json_body(request), LONG_MODEL, 2048)))


class AdminPage(RoleRequiredMixin, View):
    required_role = "admin"

    def get(self, request: HttpRequest) -> HttpResponse:
        rbac = get_rbac()
        policy = rbac.policy
        rows = "".join(
            f"<tr><td>{escape(role.name)}</td><td>{escape(', '.join(role.models)) or '-'}</td>"
            f"<td>{role.max_tokens or '-'}</td><td>{role.rpm or '-'}</td></tr>"
            for role in policy.roles.values()
        )
        return HttpResponse(ADMIN_PAGE.replace("{{rows}}", rows).replace("{{spend}}", _spend_section(rbac)))


def _spend_section(rbac: Any) -> str:
    """Today's spend from the ledger. It records principal ids (the user's pk here): the page shows usernames."""
    if rbac.spend_ledger is None:
        return "<p>No spend ledger.</p>"
    report = rbac.spend_ledger.report()
    model = get_user_model()
    ids = [row.principal for row in report.rows if row.principal.isdigit()]
    names = {str(pk): name for pk, name in model.objects.filter(pk__in=ids).values_list("pk", model.USERNAME_FIELD)}
    return spend_html(report, label=lambda principal: names.get(principal, principal))
