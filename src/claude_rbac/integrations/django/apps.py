from __future__ import annotations

from django.apps import AppConfig  # type: ignore[import-untyped]


class ClaudeRBACConfig(AppConfig):  # type: ignore[misc]
    """``INSTALLED_APPS += ["claude_rbac.integrations.django"]`` registers the system checks."""

    name = "claude_rbac.integrations.django"
    label = "claude_rbac"
    verbose_name = "Claude RBAC"

    def ready(self) -> None:
        from .checks import register

        register()
