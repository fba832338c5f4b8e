"""What one outgoing SDK request asks for, and what the policy makes of it.

Pure functions over the request the anthropic SDK is about to send: which endpoint, which models and
max_tokens (the top-level request, every ``fallbacks`` entry, every request of a batch), the decision
for each, and the body with ``max_tokens`` clamped where the policy says so. Nothing here touches a
counter, a span or the network.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from .errors import AccessDenied, InvalidRequest
from .policy import Decision, Policy, Principal, Scope

__all__ = ["CallPlan", "TokenEstimator", "estimate_input_tokens", "operation_of", "plan_call"]

TokenEstimator = Callable[[Mapping[str, Any]], int]
IMAGE_TOKENS: Final = 1_600
MIN_THINKING_BUDGET: Final = 1_024
_BATCH_ITEM = re.compile(r"/v1/messages/batches/[^/]+(/results|/cancel)?")

# (method, path) -> operation name. Anything else is denied: the client governs the Messages API only.
_OPERATIONS: Final = {
    ("POST", "/v1/messages"): "messages.create",
    ("POST", "/v1/messages/count_tokens"): "messages.count_tokens",
    ("POST", "/v1/messages/batches"): "messages.batches.create",
}


_OPERATION_CACHE: dict[tuple[str, str], str | None] = {}


def operation_of(method: str, url: str) -> str | None:
    """The governed operation a request is, or ``None`` for an endpoint the policy does not know."""
    key = (method, url)
    if key in _OPERATION_CACHE:
        return _OPERATION_CACHE[key]
    operation = _classify(method, url)
    if len(_OPERATION_CACHE) >= 1024:  # batch ids make URLs unbounded
        _OPERATION_CACHE.clear()
    _OPERATION_CACHE[key] = operation
    return operation


def _classify(method: str, url: str) -> str | None:
    path = urlsplit(url).path.rstrip("/") or "/"
    method = method.upper()
    operation = _OPERATIONS.get((method, path))
    if operation is not None:
        return operation
    match = _BATCH_ITEM.fullmatch(path)
    if match is None:
        return None
    suffix = match.group(1)
    if method == "GET" and suffix is None:
        return "messages.batches.retrieve"
    if method == "GET" and suffix == "/results":
        return "messages.batches.results"
    if method == "POST" and suffix == "/cancel":
        return "messages.batches.cancel"
    return None


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    """A deliberately high estimate of a request's input tokens, reserved before the call and settled after.

    Text counts one token per 3 UTF-8 bytes of its JSON (Claude averages about 3.5 characters a token,
    so this over-reserves and the settlement gives the rest back); an image counts 1,600 tokens (the
    most a 1.15-megapixel image costs) rather than its base64 size.
    """
    images = 0

    def strip(value: Any) -> Any:
        nonlocal images
        if isinstance(value, dict):
            source = value.get("source")
            if value.get("type") == "image" and isinstance(source, dict):
                images += 1
                return None
            return {key: strip(item) for key, item in value.items()}
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    prompt = {key: body.get(key) for key in ("system", "messages", "tools", "tool_choice") if key in body}
    size = len(json.dumps(strip(prompt), ensure_ascii=False, default=str).encode("utf-8"))
    return math.ceil(size / 3) + images * IMAGE_TOKENS


@dataclass(slots=True)
class CallPlan:
    """The policy's answer for one SDK request."""

    operation: str | None
    decision: Decision
    body: dict[str, Any] | None = None
    """The body to send instead, when the policy changed it (clamped max_tokens); else ``None``."""
    tokens: int = 0
    """Tokens to reserve: the input estimate plus the effective max_tokens (summed over a batch)."""
    items: int = 1
    counts_rpm: bool = True
    error: AccessDenied | None = field(default=None, repr=False)


def _deny_endpoint(principal: Principal | None, method: str, url: str) -> CallPlan:
    role = principal.role if principal is not None and isinstance(principal.role, str) else None
    path = urlsplit(url).path
    message = f"This client may only call the Messages API, not {method.upper()} {path}."
    return CallPlan(None, Decision(False, "api_access_not_allowed", role, message=message), counts_rpm=False)


def _thinking(item: dict[str, Any], decision: Decision, role: str | None) -> dict[str, Any] | None:
    """A ``thinking`` config that stays valid under a clamped max_tokens, or ``None`` when none is needed."""
    thinking = item.get("thinking")
    if not isinstance(thinking, Mapping) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    effective = decision.max_tokens_effective
    if not isinstance(budget, int) or effective is None or budget < effective:
        return None
    requested = decision.max_tokens_requested or effective
    scaled = min(effective - 1, max(MIN_THINKING_BUDGET, budget * effective // requested))
    if scaled < MIN_THINKING_BUDGET:
        raise AccessDenied(
            f"Extended thinking needs max_tokens above {MIN_THINKING_BUDGET}; role {role!r} is limited below that.",
            reason="max_tokens_exceeded",
        )
    return {**thinking, "budget_tokens": scaled}


def _govern_item(
    policy: Policy,
    principal: Principal | None,
    scope: Scope,
    item: Mapping[str, Any],
    estimate: TokenEstimator | None,
    enforce: bool,
) -> tuple[Decision, dict[str, Any] | None, int]:
    if "model" not in item:
        raise InvalidRequest("model is required.")
    if "max_tokens" not in item:
        raise InvalidRequest("max_tokens is required.")
    decision = policy.decide(principal, model=item["model"], max_tokens=item["max_tokens"], scope=scope)
    if not decision.allowed:
        return decision, None, 0
    changes: dict[str, Any] = {}
    if decision.clamped:
        changes["max_tokens"] = decision.max_tokens_effective
        if (thinking := _thinking(dict(item), decision, decision.role)) is not None:
            changes["thinking"] = thinking
    most = decision.max_tokens_effective or 0
    fallbacks = item.get("fallbacks")
    if fallbacks is not None:
        if not isinstance(fallbacks, list):
            raise InvalidRequest("fallbacks must be a list.")
        new_fallbacks = []
        for entry in fallbacks:
            if not isinstance(entry, Mapping) or "model" not in entry:
                raise InvalidRequest("each fallbacks entry needs a model.")
            fallback_tokens = entry.get("max_tokens")
            fallback = policy.decide(
                principal,
                model=entry["model"],
                max_tokens=decision.max_tokens_requested if fallback_tokens is None else fallback_tokens,
                scope=scope,
            )
            if not fallback.allowed:
                return fallback, None, 0
            most = max(most, fallback.max_tokens_effective or 0)
            if fallback.clamped and fallback_tokens is not None:
                new_fallbacks.append({**entry, "max_tokens": fallback.max_tokens_effective})
            else:
                new_fallbacks.append(dict(entry))
        if new_fallbacks != fallbacks:
            changes["fallbacks"] = new_fallbacks
    tokens = estimate(item) + most if estimate is not None else 0
    if not enforce or not changes:
        return decision, None, tokens
    return decision, {**item, **changes}, tokens


def plan_call(
    policy: Policy,
    principal: Principal | None,
    scope: Scope,
    method: str,
    url: str,
    body: object,
    *,
    estimate: TokenEstimator | None = None,
    count_tokens: bool = True,
    enforce: bool = True,
) -> CallPlan:
    """Decide one SDK request. Raises :class:`InvalidRequest` for a malformed one."""
    operation = operation_of(method, url)
    if operation is None:
        return _deny_endpoint(principal, method, url)
    if operation.startswith("messages.batches.") and operation != "messages.batches.create":
        return CallPlan(operation, policy.decide(principal), counts_rpm=False)
    if not isinstance(body, Mapping):
        raise InvalidRequest("the request body must be a JSON object.")
    if operation == "messages.count_tokens":
        if "model" not in body:
            raise InvalidRequest("model is required.")
        return CallPlan(operation, policy.decide(principal, model=body["model"], scope=scope), counts_rpm=False)

    estimator = (estimate or estimate_input_tokens) if count_tokens else None
    if operation == "messages.create":
        decision, new_body, tokens = _govern_item(policy, principal, scope, body, estimator, enforce)
        return CallPlan(operation, decision, new_body, tokens)

    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise InvalidRequest("requests must be a non-empty list.")
    new_requests: list[Any] = []
    changed = False
    total = 0
    first: Decision | None = None
    for request in requests:
        params = request.get("params") if isinstance(request, Mapping) else None
        if not isinstance(params, Mapping):
            raise InvalidRequest("each batch request needs params.")
        decision, new_params, tokens = _govern_item(policy, principal, scope, params, estimator, enforce)
        if not decision.allowed:
            return CallPlan(operation, decision, items=len(requests))
        first = first or decision
        total += tokens
        if new_params is not None:
            changed = True
            new_requests.append({**request, "params": new_params})
        else:
            new_requests.append(request)
    assert first is not None
    new_body = {**body, "requests": new_requests} if changed else None
    return CallPlan(operation, first, new_body, total, items=len(requests))
