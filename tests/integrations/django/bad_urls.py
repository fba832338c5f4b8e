"""A URLconf whose guards name roles the policy lacks (system check claude_rbac.E004)."""

from typing import Any

from django.http import HttpResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.views import View

from claude_rbac.integrations.django import RoleRequiredMixin, requires_role

from . import views


@requires_role("superadmin")
def typo(request: Any) -> HttpResponse:
    return HttpResponse("never")


class NoRole(RoleRequiredMixin, View):
    def get(self, request: Any) -> HttpResponse:
        return HttpResponse("never")


class UnknownMethodRole(View):
    @method_decorator(requires_role("owner"))
    def get(self, request: Any) -> HttpResponse:
        return HttpResponse("never")


urlpatterns = [
    path("fine", views.chat),
    path("typo", typo),
    path("norole", NoRole.as_view()),
    path("method", UnknownMethodRole.as_view()),
]
