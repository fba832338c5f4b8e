"""Role-based access control for Anthropic's Claude, embedded in the web app you already have."""

from ._version import __version__
from .errors import (
    AccessDenied,
    BackendUnavailable,
    InvalidRequest,
    NotAuthenticated,
    PolicyError,
    RateLimited,
    RBACError,
)
from .policy import Decision, Policy, Principal, Role, Scope
from .quota import BatchSpendRecorder, SpendRecorder, SpendWindow
from .rbac import RBAC

__all__ = [
    "RBAC",
    "BatchSpendRecorder",
    "SpendRecorder",
    "SpendWindow",
    "AccessDenied",
    "BackendUnavailable",
    "Decision",
    "InvalidRequest",
    "NotAuthenticated",
    "Policy",
    "PolicyError",
    "Principal",
    "RBACError",
    "RateLimited",
    "Role",
    "Scope",
    "__version__",
]
