"""Every refusal claude_rbac can make: its reason, its message (written once, here), its status and error class.

A decision carries a reason code (``model_not_allowed``...); :func:`error_for` turns it into the exception
an integration answers with, in the Anthropic error shape. None of the exceptions subclasses the anthropic
SDK's ``APIStatusError`` or ``APIConnectionError``: the SDK retries those when middleware raises them,
and a denial must never be retried.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from ._secrets import hide_keys

__all__ = [
    "REASONS",
    "AccessDenied",
    "BackendUnavailable",
    "InvalidRequest",
    "NotAuthenticated",
    "PolicyError",
    "PolicyProblem",
    "RBACError",
    "RateLimited",
    "Reason",
    "error_for",
    "message_for",
]


class RBACError(Exception):
    """A request that claude_rbac refused. ``to_dict()`` is the Anthropic error envelope."""

    status_code: ClassVar[int] = 403
    error_type: ClassVar[str] = "permission_error"
    default_reason: ClassVar[str] = "api_access_not_allowed"

    def __init__(self, message: str | None = None, *, reason: str | None = None) -> None:
        self.reason = reason or self.default_reason
        self.message = hide_keys(message or message_for(self.reason))
        """Never a key: a message that quotes one (a model name someone pasted a key into) shows its fingerprint."""
        super().__init__(self.message)

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

    def __init__(self, message: str | None = None, *, retry_after: float, reason: str | None = None) -> None:
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


@dataclass(frozen=True)
class PolicyProblem:
    """One thing wrong with a policy: where it is (file, role, field) and what."""

    message: str
    source: str | None = None
    role: str | None = None
    field: str | None = None

    def __post_init__(self) -> None:
        # Whatever quoted it (a parser, a field path, a role name), a key shows as its fingerprint only.
        for name in ("message", "source", "role", "field"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, hide_keys(value))

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
            "error": {"type": self.error_type, "message": "Internal server error.", "error_code": self.reason},
        }


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason a decision can give: the error it raises, and its messages.

    ``messages`` maps a variant ("" is the default) to a template with named fields (``{role!r}``,
    ``{model!r}``...); ``generic`` stands in when the caller cannot give the fields.
    """

    code: str
    error: type[RBACError]
    generic: str
    messages: dict[str, str]

    def format(self, variant: str = "", **fields: object) -> str:
        template = self.messages.get(variant) or self.messages.get("") or self.generic
        try:
            return hide_keys(template.format(**fields))
        except (KeyError, IndexError):
            return self.generic


def _reason(code: str, error: type[RBACError], generic: str, default: str = "", **variants: str) -> Reason:
    return Reason(code, error, generic, {"": default, **variants})


UNAVAILABLE: Final = "Access control is temporarily unavailable."

REASONS: Final[dict[str, Reason]] = {
    reason.code: reason
    for reason in (
        _reason(
            "unauthenticated",
            NotAuthenticated,
            "Sign in to use Claude.",
            route="Sign in to use this route.",
            loader="Could not establish who is signed in.",
        ),
        _reason("unknown_role", AccessDenied, "Your role is not known here.", "Role {role!r} is not in the policy."),
        _reason(
            "role_insufficient",
            AccessDenied,
            "Your role may not use this route.",
            "Role {role!r} may not use this route.",
            no_role="The signed-in user has no role.",
        ),
        _reason(
            "api_access_not_allowed",
            AccessDenied,
            "Your role may not use the Claude API.",
            "Role {role!r} may not use the Claude API.",
            no_role="The signed-in user has no role, so may not use the Claude API.",
        ),
        _reason(
            "endpoint_not_allowed",
            AccessDenied,
            "This client may only call the Messages API.",
            "This client may only call the Messages API, not {method} {path}.",
        ),
        _reason(
            "model_not_allowed",
            AccessDenied,
            "This model is not allowed.",
            "Role {role!r} may not use model {model!r}.",
            route="This route allows only {patterns}, not model {model!r}.",
            field="This client does not govern the model named in {field}, so it refuses the request.",
            unpriced="Role {role!r} has a spend limit and model {model!r} has no price: {why}.",
        ),
        _reason(
            "max_tokens_exceeded",
            AccessDenied,
            "max_tokens is above the limit.",
            "max_tokens {requested} is above the limit for role {role!r}.",
            route="max_tokens {requested} is above this route's limit of {limit}.",
            thinking="Extended thinking needs max_tokens above {minimum}; role {role!r} is limited below that.",
        ),
        _reason(
            "tool_not_allowed",
            AccessDenied,
            "This tool is not allowed.",
            "Role {role!r} may not use the {value!r} tool.",
            route="This route does not allow the {value!r} tool.",
            container="Role {role!r} may reuse a container only in a request with a code execution tool it is granted.",
        ),
        _reason(
            "mcp_server_not_allowed",
            AccessDenied,
            "This MCP server is not allowed.",
            "Role {role!r} may not connect the MCP server {value!r}.",
            route="This route does not allow the MCP server {value!r}.",
        ),
        _reason(
            "service_tier_not_allowed",
            AccessDenied,
            "This service tier is not allowed.",
            "Role {role!r} may not ask for service_tier {value!r}.",
            route="This route does not allow service_tier {value!r}.",
        ),
        _reason(
            "speed_not_allowed",
            AccessDenied,
            "This speed is not allowed.",
            "Role {role!r} may not ask for speed {value!r}.",
            route="This route does not allow speed {value!r}.",
        ),
        _reason(
            "inference_geo_not_allowed",
            AccessDenied,
            "This inference geography is not allowed.",
            "Role {role!r} may not ask for inference_geo {value!r}.",
            route="This route does not allow inference_geo {value!r}.",
        ),
        _reason(
            "beta_not_allowed",
            AccessDenied,
            "This beta is not allowed.",
            "Role {role!r} may not use the beta {value!r}.",
            route="This route does not allow the beta {value!r}.",
        ),
        _reason(
            "workspace_not_allowed",
            AccessDenied,
            "This workspace is not allowed.",
            "Role {role!r} may not select workspace {value!r}: its calls go to its own workspace in the policy.",
        ),
        _reason(
            "field_not_allowed",
            AccessDenied,
            "A request field claude_rbac does not govern is refused.",
            "Role {role!r} may not send the field {value!r}: the policy is strict, and claude_rbac does not govern it.",
        ),
        _reason(
            "host_not_allowed",
            AccessDenied,
            "This client may only call its workspace's API host.",
        ),
        _reason("invalid_request", InvalidRequest, "The request is invalid."),
        _reason("key_revoked", AccessDenied, "The API key for this workspace has been revoked."),
        _reason(
            "batch_not_owned",
            AccessDenied,
            "Only the principal that created a batch may retrieve, read or cancel it.",
        ),
        _reason(
            "tenant_restriction_violation",
            AccessDenied,
            "Access restricted by network policy. Contact IT Administrator.",
        ),
        _reason(
            "rate_limited",
            RateLimited,
            "Too many requests; retry later.",
            "Too many requests per minute; retry later.",
            tokens="Too many tokens per minute; retry later.",
        ),
        _reason("token_budget_exceeded", RateLimited, "The token budget for this period is used up."),
        _reason(
            "spend_limit_exceeded",
            RateLimited,
            "The spend limit for this period is used up.",
            "The {scope} spend limit for this {period} (UTC) is used up; it resets at {reset}.",
        ),
        _reason("backend_unavailable", BackendUnavailable, UNAVAILABLE),
    )
}
"""Every reason a denial can give, with its error class and its messages (each written here, once)."""


def message_for(reason: str, variant: str = "", **fields: object) -> str:
    """The message of ``reason`` (in its ``variant``), filled with ``fields``."""
    known = REASONS.get(reason)
    return known.format(variant, **fields) if known is not None else "Access denied."


def error_for(reason: str, message: str | None = None, *, retry_after: float | None = None) -> RBACError:
    """The exception a denial with ``reason`` raises (its class, status and Anthropic error type)."""
    known = REASONS.get(reason)
    if known is None:
        return AccessDenied(message or "Access denied.", reason=reason)
    if known.error is RateLimited:
        return RateLimited(message, retry_after=60.0 if retry_after is None else retry_after, reason=reason)
    return known.error(message, reason=reason)
