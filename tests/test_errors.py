from __future__ import annotations

import anthropic
import pytest

from claude_rbac import (
    AccessDenied,
    BackendUnavailable,
    InvalidRequest,
    NotAuthenticated,
    PolicyError,
    RateLimited,
    RBACError,
)


@pytest.mark.parametrize(
    ("error", "status", "error_type", "error_code"),
    [
        (NotAuthenticated(), 401, "authentication_error", "unauthenticated"),
        (AccessDenied("No.", reason="model_not_allowed"), 403, "permission_error", "model_not_allowed"),
        (RateLimited("Slow down.", retry_after=2.1), 429, "rate_limit_error", "rate_limited"),
        (
            RateLimited("Out.", retry_after=3600, reason="token_budget_exceeded"),
            429,
            "rate_limit_error",
            "token_budget_exceeded",
        ),
        (BackendUnavailable(), 503, "api_error", "backend_unavailable"),
        (InvalidRequest("max_tokens must be an integer."), 400, "invalid_request_error", "invalid_request"),
    ],
)
def test_each_error_is_an_anthropic_error_body(error: RBACError, status: int, error_type: str, error_code: str) -> None:
    assert error.status_code == status
    assert error.error_type == error_type
    assert error.reason == error_code
    body = error.to_dict()
    assert body == {"type": "error", "error": {"type": error_type, "message": error.message, "error_code": error_code}}


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert RateLimited("x", retry_after=2.1).headers == {"Retry-After": "3"}
    assert RateLimited("x", retry_after=-5).headers == {"Retry-After": "1"}
    assert AccessDenied("x").headers == {}


def test_the_hierarchy() -> None:
    assert isinstance(AccessDenied("x"), PermissionError)
    assert isinstance(InvalidRequest("x"), ValueError)
    assert isinstance(PolicyError("x"), ValueError)
    for cls in (NotAuthenticated, AccessDenied, RateLimited, BackendUnavailable, InvalidRequest, PolicyError):
        assert issubclass(cls, RBACError)
        # The SDK retries these when middleware raises them: ours must never be one.
        assert not issubclass(cls, (anthropic.APIStatusError, anthropic.APIConnectionError))


def test_a_policy_error_body_never_shows_the_policy() -> None:
    error = PolicyError("rbac.toml: roles.admin.models: secret detail")
    assert "secret" not in str(error.to_dict())
    assert "roles.admin" in str(error)
