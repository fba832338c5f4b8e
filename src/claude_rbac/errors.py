"""The errors claude_rbac raises, each with the Anthropic-shaped body an integration sends back.

None of them subclasses the anthropic SDK's ``APIStatusError`` or ``APIConnectionError``: the SDK retries
those when middleware raises them, and a denial must never be retried.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AccessDenied",
    "BackendUnavailable",
    "InvalidRequest",
    "NotAuthenticated",
    "PolicyError",
    "PolicyProblem",
    "RBACError",
    "RateLimited",
]


class RBACError(Exception):
    """A request that claude_rbac refused. ``to_dict()`` is the Anthropic error envelope."""

    status_code: ClassVar[int] = 403
    error_type: ClassVar[str] = "permission_error"
    default_reason: ClassVar[str] = "api_access_not_allowed"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason

    @property
    def headers(self) -> dict[str, str]:
        """Response headers the integration adds (``Retry-After`` on a 429)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {"type": self.error_type, "message": self.message, "error_code": self.reason},
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"


class NotAuthenticated(RBACError):
    status_code = 401
    error_type = "authentication_error"
    default_reason = "unauthenticated"

    def __init__(self, message: str = "Sign in to use Claude.", *, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)


class AccessDenied(RBACError, PermissionError):
    status_code = 403
    error_type = "permission_error"
    default_reason = "api_access_not_allowed"


class InvalidRequest(RBACError, ValueError):
    """A request the app built wrongly (a float ``max_tokens``, a model that is not a string).

    A ``ValueError`` for the code that made it, and a 400 ``invalid_request_error`` on the wire.
    """

    status_code = 400
    error_type = "invalid_request_error"
    default_reason = "invalid_request"


class RateLimited(RBACError):
    status_code = 429
    error_type = "rate_limit_error"
    default_reason = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = max(1, math.ceil(retry_after))
        """Whole seconds until the window has room again, at least 1."""

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class BackendUnavailable(RBACError):
    """The limits storage (or another backend) failed; claude_rbac fails closed."""

    status_code = 503
    error_type = "api_error"
    default_reason = "backend_unavailable"

    def __init__(
        self, message: str = "Access control is temporarily unavailable.", *, reason: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)


@dataclass(frozen=True)
class PolicyProblem:
    """One thing wrong with a policy: where it is (file, role, field) and what."""

    message: str
    source: str | None = None
    role: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = []
        if self.source:
            where.append(self.source)
        path = ".".join(part for part in ("roles" if self.role is not None else None, self.role) if part)
        if self.field:
            path = f"{path}.{self.field}" if path else self.field
        if path:
            where.append(path)
        return f"{': '.join(where)}: {self.message}" if where else self.message


class PolicyError(RBACError, ValueError):
    """A policy that does not validate. Raised when it is loaded, never per request.

    ``problems`` lists every problem found, each naming the file, the role and the field.
    """

    status_code = 500
    error_type = "api_error"
    default_reason = "policy_invalid"

    def __init__(self, problems: Iterable[PolicyProblem] | str) -> None:
        if isinstance(problems, str):
            problems = [PolicyProblem(problems)]
        self.problems: tuple[PolicyProblem, ...] = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))

    def to_dict(self) -> dict[str, Any]:
        # Never put the policy in a response body: a generic message only.
        return {
            "type": "error",
            "error": {
                "type": self.error_type,
                "message": "Internal server error.",
                "error_code": self.reason,
            },
        }


def error_headers(error: RBACError, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers of an error response: the JSON content type, the error's own, and ``extra``."""
    return {"content-type": "application/json", **error.headers, **(extra or {})}
