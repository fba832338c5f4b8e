"""What one outgoing SDK request asks for, and what the policy makes of it.

Pure functions over the request the anthropic SDK is about to send: which endpoint, every model it names
(the request's own, each ``fallbacks`` entry, each advisor tool, in each request of a batch: see
:mod:`._model_fields`), the decision for each, then every field that changes cost, reach or data residency
(tools, MCP servers, tier, speed, geography, betas, workspace: see :mod:`._fields`), and the body with every
``max_tokens`` clamped where the policy says so. A malformed request is a denial with reason
``invalid_request`` like any other. Nothing here touches a counter, a span or the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvalidRequest, message_for
from ._call_plan import (
    MIN_THINKING_BUDGET,
    NONSTREAMING_MAX_TOKENS,
    NOT_ASKED,
    CallPlan,
    TokenEstimator,
    estimate_input_tokens,
)
from ._fields import FieldCheck, merge_fields
from ._model import Decision, FieldValues, Principal, min_cap
from ._model_fields import ModelField, model_fields
from ._operations import BATCH_READS, batch_id_of, operation_of
from ._plan_memo import PlanMemo, from_memo, plain_key, remember
from ._policy import Policy
from ._prices import MissingPrice, PriceTable
from ._reserve import reserve
from ._scope import Scope

__all__ = [
    "NONSTREAMING_MAX_TOKENS",
    "CallPlan",
    "PlanMemo",
    "TokenEstimator",
    "estimate_input_tokens",
    "plan_call",
]


def _role_name(principal: Principal | None) -> str | None:
    return principal.role if principal is not None and isinstance(principal.role, str) else None


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
    spend: int = 0


@dataclass(frozen=True, slots=True)
class _Asking:
    """The question every model of one request is asked under: who, where, and whether to change the body."""

    policy: Policy
    principal: Principal | None
    scope: Scope
    enforce: bool
    fields: FieldCheck | None = None
    """The request-field question, for a principal whose role the policy has."""
    prices: PriceTable | None = None
    """The prices to reserve dollars at, for a role with a spend limit (``None``: reserve none)."""
    batch: bool = False

    def decide(self, model: object, max_tokens: object = NOT_ASKED) -> Decision:
        """The decision for ``model`` (and ``max_tokens``: a ``None`` in a request is a value, and refused)."""
        if max_tokens is NOT_ASKED:
            return self.policy.decide(self.principal, model=model, scope=self.scope)
        return self.policy.decide(self.principal, model=model, max_tokens=max_tokens, scope=self.scope)

    def cap(self) -> int | None:
        role = self.policy.role(_role_name(self.principal))
        return min_cap(role.max_tokens if role is not None else None, self.scope.max_tokens)


def _unknown(asking: _Asking, field: ModelField) -> Decision:
    model = field.value if isinstance(field.value, str) else None
    message = message_for("model_not_allowed", "field", field=field.describe())
    return Decision(False, "model_not_allowed", _role_name(asking.principal), model, message=message)


def _sub_call(asking: _Asking, entry: Mapping[str, Any], inherited: int | None) -> tuple[Decision, dict[str, Any]]:
    """The decision for a model one request calls besides its own (a fallback, an advisor), and its entry
    with ``max_tokens`` (and ``thinking``) made to fit. ``inherited``: the max_tokens it has when it gives none."""
    own = entry.get("max_tokens")
    decision = asking.decide(entry["model"], inherited if own is None else own)
    if not decision.allowed or not decision.clamped or own is None:
        return decision, dict(entry)
    fitted = {**entry, "max_tokens": decision.max_tokens_effective}
    thinking = _thinking(entry, decision)
    if isinstance(thinking, Decision):
        return thinking, fitted
    if thinking is not None:
        fitted["thinking"] = thinking
    return decision, fitted


def _reserved(
    asking: _Asking,
    item: Mapping[str, Any],
    decision: Decision,
    prompt: int,
    runs: list[tuple[str, int]],
    advisors: list[tuple[str, int]],
) -> int | Decision:
    """Micro-dollars one request reserves (0 without a spend limit), or the denial of a call that cannot be priced."""
    if asking.prices is None:
        return 0
    try:
        return reserve(item, asking.prices, input_tokens=prompt, runs=runs, besides=advisors, batch=asking.batch)
    except (MissingPrice, ValueError) as exc:
        message = message_for("model_not_allowed", "unpriced", role=decision.role, model=decision.model, why=exc)
        return decision.denied("model_not_allowed", message)


def _govern_item(  # noqa: PLR0915 - one request's walk, in the order the API applies it
    asking: _Asking,
    item: Mapping[str, Any],
    estimate: TokenEstimator | None,
    nonstreaming_limit: int | None,
    *,
    counting: bool = False,
) -> _Item:
    """One request (a ``messages.create`` body, a batch item's ``params``, or, ``counting``, a count_tokens body)."""
    if "model" not in item:
        raise InvalidRequest("model is required.")
    if not counting and "max_tokens" not in item:
        raise InvalidRequest("max_tokens is required.")
    fallbacks = item.get("fallbacks")
    if fallbacks is not None and not isinstance(fallbacks, list):
        raise InvalidRequest("fallbacks must be a list of models: with 'default' the server picks models unchecked.")
    decision = asking.decide(item["model"], NOT_ASKED if counting else item["max_tokens"])
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
    most = decision.max_tokens_effective or 0  # one of the request and its fallbacks runs
    besides = 0  # every advisor call runs on top of it
    runs = [(str(decision.model), most)]
    advisors: list[tuple[str, int]] = []
    lists: dict[str, list[Any]] = {}
    for field in model_fields(item):
        if field.kind == "request":
            continue
        if field.kind == "unknown":
            return _Item(_unknown(asking, field), None, 0)
        name, index = str(field.path[0]), int(field.path[1])
        if counting:
            sub = asking.decide(field.value)
            if not sub.allowed:
                return _Item(sub, None, 0)
            continue
        if field.kind == "fallback":
            sub, entry = _sub_call(asking, field.owner, decision.max_tokens_requested)
            most = max(most, sub.max_tokens_effective or 0)
            runs.append((str(sub.model), sub.max_tokens_effective or 0))
        else:  # an advisor: without max_tokens its output is bounded by the model alone, so give it the cap
            cap = asking.cap()
            sub, entry = _sub_call(asking, field.owner, cap)
            if cap is not None and field.owner.get("max_tokens") is None:
                entry["max_tokens"] = cap
            besides += sub.max_tokens_effective or 0
            advisors.append((str(sub.model), sub.max_tokens_effective or 0))
        if not sub.allowed:
            return _Item(sub, None, 0)
        if entry != field.owner:
            lists.setdefault(name, list(item[name]))[index] = entry
    changes.update(lists)
    if asking.fields is not None:
        decision = asking.fields.item(decision, item)
        if not decision.allowed:
            return _Item(decision, None, 0)
    if counting:
        return _Item(decision, None, 0)
    sent = most if asking.enforce else max(most, decision.max_tokens_requested or 0)
    if nonstreaming_limit is not None and item.get("stream") is not True and sent > nonstreaming_limit:
        raise InvalidRequest(
            f"max_tokens {sent} needs streaming: a call that may take longer than 10 minutes must stream "
            f"(use stream=True or messages.stream(), or ask for at most {nonstreaming_limit})."
        )
    prompt = estimate(item) if estimate is not None else 0
    tokens = prompt + most + besides if estimate is not None else 0
    spend = _reserved(asking, item, decision, prompt, runs, advisors)
    if isinstance(spend, Decision):
        return _Item(spend, None, 0)
    if not asking.enforce or not changes:
        return _Item(decision, None, tokens, spend)
    return _Item(decision, {**item, **changes}, tokens, spend)


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
    headers: Mapping[str, object] | None = None,
    memo: PlanMemo | None = None,
) -> CallPlan:
    """Decide one SDK request. A malformed one is a denial with reason ``invalid_request``.

    ``nonstreaming_limit``: refuse (400) a non-streaming ``messages.create`` whose max_tokens, after the
    clamp, is above it: the SDK's own long-request rule, which the governed client applies after the clamp.
    ``headers``: the request's own headers, where the SDK puts ``betas`` and ``workspace_id``.
    ``memo``: where to keep and find the plans of plain requests (a model, a max_tokens, a conversation
    and sampling settings), per role, scope, endpoint, model, max_tokens and streaming; each hit checks it is
    this policy's and this scope's, and rebuilds the body and the token estimate from the request's own
    prompt. Own one per policy (the enforcer keeps one per generation, so a reload starts empty).
    """
    key = None
    if memo is not None and principal is not None and type(principal.role) is str:
        plain = plain_key(body, headers)
        if plain is not None:
            key = (principal.role, id(scope), method, url, enforce, nonstreaming_limit, *plain)
            hit = memo.get(key)
            if hit is not None and hit[0] is policy and hit[1] is scope:
                assert isinstance(body, dict)
                role = policy.roles.get(principal.role)
                # A call that reserves dollars prices its own prompt: the hit keeps the decision, not the dollars.
                spends = count_tokens and (bool(scope.spend) or (role is not None and role.spends))
                estimator = (estimate or estimate_input_tokens) if count_tokens else None
                found = from_memo(hit[2], body, estimator, enforce, policy.prices if spends else None)
                if found is not None:
                    return found
    plan = _plan_call(
        policy, principal, scope, method, url, body, estimate, count_tokens, enforce, nonstreaming_limit, headers
    )
    if key is not None and memo is not None and plan.operation == "messages.create":
        remember(memo, key, policy, scope, plan)
    return plan


def _plan_call(
    policy: Policy,
    principal: Principal | None,
    scope: Scope,
    method: str,
    url: str,
    body: object,
    estimate: TokenEstimator | None,
    count_tokens: bool,
    enforce: bool,
    nonstreaming_limit: int | None,
    headers: Mapping[str, object] | None,
) -> CallPlan:
    operation = operation_of(method, url)
    if operation is None:
        path = urlsplit(url).path
        message = message_for("endpoint_not_allowed", method=method.upper(), path=path)
        return CallPlan(
            None, Decision(False, "endpoint_not_allowed", _role_name(principal), message=message), counts_rpm=False
        )
    if operation in BATCH_READS:
        return CallPlan(operation, policy.decide(principal), counts_rpm=False, batch_id=batch_id_of(url))
    role = policy.role(_role_name(principal))
    fields = FieldCheck(role, scope, policy.settings, operation) if role is not None else None
    spends = role is not None and (role.spends or bool(scope.spend))
    prices = policy.prices if spends and count_tokens else None
    asking = _Asking(policy, principal, scope, enforce, fields, prices, operation == "messages.batches.create")
    estimator = (estimate or estimate_input_tokens) if count_tokens else None
    try:
        if not isinstance(body, Mapping):
            raise InvalidRequest("the request body must be a JSON object.")
        if operation == "messages.count_tokens":
            plan = CallPlan(operation, _govern_item(asking, body, None, None, counting=True).decision)
        elif operation == "messages.create":
            item = _govern_item(asking, body, estimator, nonstreaming_limit)
            plan = CallPlan(operation, item.decision, item.body, item.tokens, item.spend)
        else:
            plan = _plan_batch(asking, operation, body, estimator)
        if fields is None or not plan.decision.allowed:
            return plan
        decision = fields.call(plan.decision, body, headers)
        if not decision.allowed:
            return CallPlan(operation, decision, requests=plan.requests)
        plan.decision = decision
        return plan
    except InvalidRequest as exc:
        invalid = Decision(False, "invalid_request", _role_name(principal), message=exc.message)
        return CallPlan(operation, invalid)


def _plan_batch(asking: _Asking, operation: str, body: Mapping[str, Any], estimator: TokenEstimator | None) -> CallPlan:
    """A batch: every request governed as if sent alone; a model named outside the requests' params is refused."""
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise InvalidRequest("requests must be a non-empty list.")
    # Everything but the requests' params: a model named there has no decision.
    outside = {
        **{key: value for key, value in body.items() if key != "requests"},
        "requests": [{k: v for k, v in r.items() if k != "params"} for r in requests if isinstance(r, Mapping)],
    }
    for field in model_fields(outside):
        return CallPlan(operation, _unknown(asking, field), requests=len(requests))
    new_requests: list[Any] = []
    changed = False
    total = 0
    spend = 0
    first: Decision | None = None
    fields: FieldValues = ()
    for request in requests:
        params = request.get("params") if isinstance(request, Mapping) else None
        if not isinstance(params, Mapping):
            raise InvalidRequest("each batch request needs params.")
        item = _govern_item(asking, params, estimator, None)
        if not item.decision.allowed:
            return CallPlan(operation, item.decision, requests=len(requests))
        first = first or item.decision
        fields = merge_fields(fields, item.decision.fields) if item.decision.fields else fields
        total += item.tokens
        spend += item.spend
        if item.body is not None:
            changed = True
            new_requests.append({**request, "params": item.body})
        else:
            new_requests.append(request)
    assert first is not None
    new_body = {**body, "requests": new_requests} if changed else None
    return CallPlan(operation, first.with_fields(fields), new_body, total, spend, requests=len(requests))
