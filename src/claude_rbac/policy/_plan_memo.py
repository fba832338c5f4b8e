"""Plans of plain requests, remembered: a chat call that names a model, a max_tokens and a conversation is
decided by those alone, so its plan is made once per role, scope, endpoint, model and max_tokens.

Never for a request that names anything else a decision reads (tools, fallbacks, betas, a workspace...). A
hit rebuilds the body, the token estimate and (for a role or route with a spend limit) the dollar reservation
from the request's own prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, Final

from ._call_plan import CallPlan, TokenEstimator
from ._fields import BETA_HEADER, WORKSPACE_HEADER
from ._policy import Policy
from ._prices import MissingPrice, PriceTable
from ._reserve import reserve
from ._scope import Scope

__all__ = ["PLAN_MEMO_SIZE", "PlanMemo", "from_memo", "plain_key", "remember"]

PlanMemo = MutableMapping[tuple[Any, ...], tuple[Policy, Scope, CallPlan]]
"""Plans of plain requests, keyed by what decides them (see :func:`plan_call`); the caller owns and bounds it."""
PLAN_MEMO_SIZE: Final = 4096
_PLAIN_FIELDS: Final = frozenset(
    {"model", "max_tokens", "messages", "system", "metadata", "stream", "temperature", "top_p", "top_k"}
)
"""The fields of a plain request: what it says (data) and how to sample, nothing governed but model and max_tokens."""
_DATA: Final = frozenset({"messages", "system", "metadata"})
_SCALAR_TYPES: Final = frozenset({str, int, float, bool, type(None)})
_PER_CALL_HEADERS: Final = frozenset({BETA_HEADER, WORKSPACE_HEADER})


def plain_key(body: object, headers: Mapping[str, object] | None) -> tuple[Any, ...] | None:
    """(model, max_tokens, streams) of a plain ``messages.create`` body, or ``None`` when it is not plain.

    Plain: only :data:`_PLAIN_FIELDS`, each setting a scalar (nothing a model name could hide in), a string
    model and an int max_tokens (types exactly: ``True == 1``), and no betas or workspace header. Such a
    request's decision depends on nothing else, whatever its conversation says.
    """
    if type(body) is not dict or not _PLAIN_FIELDS.issuperset(body):
        return None
    for name, value in body.items():
        if name not in _DATA and type(value) not in _SCALAR_TYPES:
            return None
    model, max_tokens = body.get("model"), body.get("max_tokens")
    if type(model) is not str or type(max_tokens) is not int:
        return None
    for name, value in (headers or {}).items():  # as header_values reads them: an omitted header has no value
        if isinstance(name, str) and isinstance(value, str) and name.lower() in _PER_CALL_HEADERS:
            return None
    return model, max_tokens, body.get("stream") is True


def from_memo(
    plan: CallPlan,
    body: Mapping[str, Any],
    estimator: TokenEstimator | None,
    enforce: bool,
    prices: PriceTable | None = None,
) -> CallPlan | None:
    """The plan of a plain request whose decision is ``plan``'s: its own body, token estimate and (with
    ``prices``: the role or route reserves dollars) worst case, all from its own prompt.

    What :func:`_govern_item` makes of a plain request: the clamped max_tokens (no thinking, fallbacks or
    advisors to fit), the estimate of this prompt plus the effective max_tokens, the dollars of that prompt
    and max_tokens at the model's price. ``None`` when the prompt cannot be priced: plan it afresh.
    """
    decision = plan.decision
    if not decision.allowed:
        return CallPlan(plan.operation, decision, counts_rpm=plan.counts_rpm, requests=plan.requests)
    most = decision.max_tokens_effective or 0
    prompt = estimator(body) if estimator is not None else 0
    tokens = prompt + most if estimator is not None else 0
    spend = 0
    if prices is not None:
        try:
            spend = reserve(body, prices, input_tokens=prompt, runs=[(str(decision.model), most)])
        except (MissingPrice, ValueError):
            return None
    clamped = {**body, "max_tokens": most} if enforce and decision.clamped else None
    return CallPlan(plan.operation, decision, clamped, tokens, spend)


def remember(memo: PlanMemo, key: tuple[Any, ...], policy: Policy, scope: Scope, plan: CallPlan) -> None:
    """Keep ``plan``'s decision for ``key`` (a copy: the caller may change the plan it got back)."""
    if len(memo) >= PLAN_MEMO_SIZE:
        memo.clear()  # simpler than an LRU: a miss costs one plan
    memo[key] = (
        policy,
        scope,
        CallPlan(plan.operation, plan.decision, counts_rpm=plan.counts_rpm, requests=plan.requests),
    )
