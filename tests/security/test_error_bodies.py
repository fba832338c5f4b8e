"""Error bodies carry no stack trace, no policy, no role list and no key."""

from __future__ import annotations

import json
from typing import Any

import pytest

from claude_rbac import RBAC, Principal, RBACError
from claude_rbac.integrations import error_response
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-error-body-tests-0000000000000000000000000-ERRB"
POLICY = {
    "on_excess": "reject",
    "revoked": [],
    "roles": {
        "viewer": {"allowed": False},
        "user": {
            "inherits": "viewer",
            "models": ["claude-haiku-*"],
            "max_tokens": 64,
            "rpm": 1,
            "budget": {"day": 10_000},
        },
        "secret-ops-role": {"models": ["claude-opus-*", "internal-model-x"]},
    },
}
FORBIDDEN = (
    "Traceback",
    'File "',
    "secret-ops-role",
    "internal-model-x",
    "claude-haiku-*",
    "64",
    "10000",
    KEY,
    KEY[-10:],
)
"""Other roles, the policy's patterns and limits, keys and tracebacks. (A message may name the caller's own role.)"""


def errors(fake: FakeClaude) -> list[RBACError]:
    rbac = RBAC(POLICY, api_key=KEY, base_url=fake.url)
    attempts: list[tuple[Principal | None, dict[str, Any]]] = [
        (None, {"model": "claude-haiku-4-5", "max_tokens": 5}),
        (Principal("v", "viewer"), {"model": "claude-haiku-4-5", "max_tokens": 5}),
        (Principal("u", "user"), {"model": "claude-opus-4-7", "max_tokens": 5}),
        (Principal("u", "user"), {"model": "claude-haiku-4-5", "max_tokens": 65}),
        (Principal("u", "user"), {"model": "claude-haiku-4-5", "max_tokens": 5}),
        (Principal("u", "user"), {"model": "claude-haiku-4-5", "max_tokens": 5}),
        (Principal("u", "user"), {"model": 7, "max_tokens": 5}),
        (Principal("u", "nobody"), {"model": "claude-haiku-4-5", "max_tokens": 5}),
    ]
    found: list[RBACError] = []
    for principal, kwargs in attempts:
        try:
            rbac.client(principal).messages.create(messages=[{"role": "user", "content": "x"}], **kwargs)
        except RBACError as exc:
            found.append(exc)
    try:
        rbac.require(Principal("v", "viewer"), "user")
    except RBACError as exc:
        found.append(exc)
    return found


def test_no_body_leaks(fake_claude: FakeClaude) -> None:
    found = errors(fake_claude)
    reasons = {error.reason for error in found}
    assert reasons == {
        "unauthenticated",
        "unknown_role",
        "api_access_not_allowed",
        "model_not_allowed",
        "max_tokens_exceeded",
        "rate_limited",
        "invalid_request",
        "role_insufficient",
    }
    for error in found:
        status, headers, body = error_response(error)
        text = body.decode() + json.dumps(headers) + str(error)
        for forbidden in FORBIDDEN:
            assert forbidden not in text, (error.reason, forbidden)
        assert set(json.loads(body)) == {"type", "error"}
        assert set(json.loads(body)["error"]) == {"type", "message", "error_code"}
        assert status == error.status_code


@pytest.mark.parametrize("reason", ["role_insufficient", "model_not_allowed"])
def test_messages_name_only_the_role_and_model_asked_for(fake_claude: FakeClaude, reason: str) -> None:
    (error,) = [e for e in errors(fake_claude) if e.reason == reason]
    assert "'user'" in error.message or "'viewer'" in error.message
