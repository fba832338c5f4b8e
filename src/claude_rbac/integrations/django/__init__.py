"""Django integration: ``settings.CLAUDE_RBAC``, ``RBACMiddleware``, ``requires_role``, ``RoleRequiredMixin``.

    INSTALLED_APPS += ["claude_rbac.integrations.django"]          # system checks claude_rbac.E001...
    MIDDLEWARE += ["claude_rbac.integrations.django.RBACMiddleware"]  # after AuthenticationMiddleware
    DEFAULT_EXCEPTION_REPORTER_FILTER = "claude_rbac.integrations.django.ExceptionReporterFilter"

See docs/django.md.
"""

from .clients import get_claude, get_principal
from .guards import RoleRequiredMixin, requires_role
from .middleware import RBACMiddleware
from .reporting import ExceptionReporterFilter
from .resolvers import aprincipal_from_user, most_privileged, principal_from_user
from .runtime import get_rbac

__all__ = [
    "ExceptionReporterFilter",
    "RBACMiddleware",
    "RoleRequiredMixin",
    "aprincipal_from_user",
    "get_claude",
    "get_principal",
    "get_rbac",
    "most_privileged",
    "principal_from_user",
    "requires_role",
]
