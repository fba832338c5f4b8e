"""What one outgoing SDK request asks for, and what the policy makes of it.

Pure functions over the request the anthropic SDK is about to send: which endpoint, which models and
max_tokens (the top-level request, every ``fallbacks`` entry, every request of a batch), the decision
for each, and the body with ``max_tokens`` clamped where the policy says so. A malformed request is a
denial with reason ``invalid_request`` like any other. Nothing here touches a counter, a span or the network.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from ..errors import InvalidRequest, message_for
from ._model import Decision, Principal, Scope
from ._policy import Policy

__all__ = [
    "NONSTREAMING_MAX_TOKENS",
    "CallPlan",
    "TokenEstimator",
    "estimate_input_tokens",
    "operation_of",
    "plan_call",
]

TokenEstimator = Callable[[Mapping[str, Any]], int]
IMAGE_TOKENS: Final = 1_600
MIN_THINKING_BUDGET: Final = 1_024
NONSTREAMING_MAX_TOKENS: Final = 21_333
"""The most ``max_tokens`` a non-streaming call may ask for: the anthropic SDK refuses more (it expects such
a call to take longer than its 10-minute default timeout: 3,600 s x max_tokens / 128,000 > 600 s)."""
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
    counts_rpm: bool = True


def _role_name(principal: Principal | None) -> str | None:
    return principal.role if principal is not None and isinstance(principal.role, str) else None


def _invalid(principal: Principal | None, operation: str | None, message: str) -> CallPlan:
    return CallPlan(operation, Decision(False, "invalid_request", _role_name(principal), message=message))


def _thinking(item: Mapping[str, Any], decision: Decision) -> dict[str, Any] | Decision | None:
    """A ``thinking`` config that stays valid under a clamped max_tokens, ``None`` when none is needed,
    or a denial when extended thinking cannot fit under the cap."""
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
        message = message_for("max_tokens_exceeded", "thinking", minimum=MIN_THINKING_BUDGET, role=decision.role)
        return decision.denied("max_tokens_exceeded", message)
    return {**thinking, "budget_tokens": scaled}


@dataclass(frozen=True, slots=True)
class _Item:
    decision: Decision
    body: dict[str, Any] | None
    tokens: int


def _govern_item(
    policy: Policy,
    principal: Principal | None,
    scope: Scope,
    item: Mapping[str, Any],
    estimate: TokenEstimator | None,
    enforce: bool,
    nonstreaming_limit: int | None,
) -> _Item:
    if "model" not in item:
        raise InvalidRequest("model is required.")
    if "max_tokens" not in item:
        raise InvalidRequest("max_tokens is required.")
    decision = policy.decide(principal, model=item["model"], max_tokens=item["max_tokens"], scope=scope)
    if not decision.allowed:
        return _Item(decision, None, 0)
    changes: dict[str, Any] = {}
    if decision.clamped:
        changes["max_tokens"] = decision.max_tokens_effective
        thinking = _thinking(item, decision)
        if isinstance(thinking, Decision):
            return _Item(thinking, None, 0)
        if thinking is not None:
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
                return _Item(fallback, None, 0)
            most = max(most, fallback.max_tokens_effective or 0)
            if fallback.clamped and fallback_tokens is not None:
                new_fallbacks.append({**entry, "max_tokens": fallback.max_tokens_effective})
            else:
                new_fallbacks.append(dict(entry))
        if new_fallbacks != fallbacks:
            changes["fallbacks"] = new_fallbacks
    sent = most if enforce else max(most, decision.max_tokens_requested or 0)
    if nonstreaming_limit is not None and item.get("stream") is not True and sent > nonstreaming_limit:
        raise InvalidRequest(
            f"max_tokens {sent} needs streaming: a call that may take longer than 10 minutes must stream "
            f"(use stream=True or messages.stream(), or ask for at most {nonstreaming_limit})."
        )
    tokens = estimate(item) + most if estimate is not None else 0
    if not enforce or not changes:
        return _Item(decision, None, tokens)
    return _Item(decision, {**item, **changes}, tokens)


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
    nonstreaming_limit: int | None = None,
) -> CallPlan:
    """Decide one SDK request. A malformed one is a denial with reason ``invalid_request``.

    ``nonstreaming_limit``: refuse (400) a non-streaming ``messages.create`` whose max_tokens, after the
    clamp, is above it: the SDK's own long-request rule, which the governed client applies after the clamp.
    """
    operation = operation_of(method, url)
    if operation is None:
        path = urlsplit(url).path
        message = message_for("endpoint_not_allowed", method=method.upper(), path=path)
        return CallPlan(
            None, Decision(False, "endpoint_not_allowed", _role_name(principal), message=message), counts_rpm=False
        )
    try:
        return _plan(policy, principal, scope, operation, body, estimate, count_tokens, enforce, nonstreaming_limit)
    except InvalidRequest as exc:
        return _invalid(principal, operation, exc.message)


def _plan(
    policy: Policy,
    principal: Principal | None,
    scope: Scope,
    operation: str,
    body: object,
    estimate: TokenEstimator | None,
    count_tokens: bool,
    enforce: bool,
    nonstreaming_limit: int | None,
) -> CallPlan:
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
        item = _govern_item(policy, principal, scope, body, estimator, enforce, nonstreaming_limit)
        return CallPlan(operation, item.decision, item.body, item.tokens)

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
        item = _govern_item(policy, principal, scope, params, estimator, enforce, None)
        if not item.decision.allowed:
            return CallPlan(operation, item.decision)
        first = first or item.decision
        total += item.tokens
        if item.body is not None:
            changed = True
            new_requests.append({**request, "params": item.body})
        else:
            new_requests.append(request)
    assert first is not None
    new_body = {**body, "requests": new_requests} if changed else None
    return CallPlan(operation, first, new_body, total)
