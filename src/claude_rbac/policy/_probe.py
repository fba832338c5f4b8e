"""What the runtime would decide for one request, offline: ``claude-rbac explain``, ``claude-rbac test`` and the
pytest plugin ask this, and it asks :func:`~._request.plan_call`, the function the governed client runs.

The request is the body the anthropic SDK would send (``model``, ``max_tokens``, ``stream``, and any other
field of the Messages API), for the endpoint the SDK method calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ._model import Principal
from ._policy import Policy
from ._request import NONSTREAMING_MAX_TOKENS, CallPlan, plan_call
from ._scope import UNRESTRICTED, Scope

__all__ = ["OPERATION_ENDPOINTS", "probe"]

OPERATION_ENDPOINTS: Final = {
    "messages.create": ("POST", "/v1/messages"),
    "messages.count_tokens": ("POST", "/v1/messages/count_tokens"),
    "messages.batches.create": ("POST", "/v1/messages/batches"),
}
"""The operations a probe may name, and the endpoint the SDK sends each to."""
_PLACEHOLDER_MESSAGES: Final = ({"role": "user", "content": "?"},)


def probe(
    policy: Policy,
    principal: Principal | None,
    request: Mapping[str, Any],
    *,
    scope: Scope = UNRESTRICTED,
    operation: str = "messages.create",
) -> CallPlan:
    """The governed client's plan for ``request`` sent by ``principal`` through a route with ``scope``.

    A request without ``messages`` gets a one-message placeholder (the prompt never changes a decision, only
    the token estimate, which is not computed here). The SDK's own rule for a non-streaming call that could
    run longer than 10 minutes applies after the clamp, as in a governed client built without a ``timeout``.
    """
    method, path = OPERATION_ENDPOINTS[operation]
    body = dict(request)
    if operation != "messages.batches.create" and "messages" not in body:
        body["messages"] = [dict(message) for message in _PLACEHOLDER_MESSAGES]
    return plan_call(
        policy,
        principal,
        scope,
        method,
        path,
        body,
        count_tokens=False,
        nonstreaming_limit=NONSTREAMING_MAX_TOKENS,
    )
