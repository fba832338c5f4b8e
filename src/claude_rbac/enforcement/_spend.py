"""A settled call's exact cost: its usage priced at the policy's prices (see ``docs/spend.md``).

The model that answered is priced (a fallback may answer for the requested one), each advisor consultation at
its own model's rates. Cache writes the usage does not split by TTL are priced at the request's dearest
breakpoint TTL (over, never under). A usage that cannot be priced (a Priority Tier answer with no Priority
price in the table, a model with no price, a malformed usage, a stream cut short) is ``None``: the call keeps
its whole reservation, so spend is over-counted, never under-counted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from anthropic import APIRequest
from opentelemetry import trace

from .. import audit
from ..policy import cache_ttl, dollars_of
from ..policy._billable import Ttl
from ..policy._costs import cost_total
from ..policy.prices import Cost, MissingPrice, PriceTable
from ..quota import MICRO_USD
from ._attempt import Attempt, Binding
from ._audit import Auditor
from ._enforcer import Enforcer
from ._usage import Usage

__all__ = ["exact_cost", "is_priced", "note_reservation", "settled_cost"]

log = logging.getLogger("claude_rbac")


def exact_cost(prices: PriceTable, usage: Usage, requested: str | None, unsplit_ttl: str | None) -> Cost | None:
    """What the call cost, or ``None`` when it cannot be priced exactly (it then keeps its reservation).

    Priced on the integer path: the ``Cost`` has the exact dollars and micro-dollars of
    :func:`~claude_rbac.policy.prices.cost`; its parts are the models' (one model: none)."""
    if not usage.complete or usage.malformed or usage.billable is None:
        return None
    ttl: Ttl = "1h" if unsplit_ttl == "1h" else "5m"
    parts = [(usage.model or requested, usage.billable), *usage.advisors]
    costs: list[tuple[str, Cost]] = []
    try:
        for model, billable in parts:
            price = prices.price_for(model) if model else None
            if not model or price is None:
                raise MissingPrice(f"{model} has no price")
            costs.append((model, cost_total(billable, price, tools=prices.tools, unsplit_cache_ttl=ttl)))
    except (MissingPrice, ValueError) as exc:
        log.warning("claude_rbac: a call's usage could not be priced (%s); it keeps its dollar reservation", exc)
        return None
    if len(costs) == 1:
        return costs[0][1]
    return Cost.of([(model, each.dollars) for model, each in costs])  # the exact sum, rounded up once


def note_reservation(call: Attempt, request: APIRequest) -> None:
    """Note a call that holds dollars: its span, its reservation, how its unsplit cache writes are priced."""
    if call.reservation is None or not call.reservation.reserved_in(MICRO_USD):
        return
    call.span = trace.get_current_span()
    call.cache_ttl = cache_ttl(request.json) if isinstance(request.json, Mapping) else None
    reserved = dollars_of(call.reservation.reserved_in(MICRO_USD))
    Auditor.annotate(call.span, {audit.COST_RESERVED: float(reserved)})


def is_priced(call: Attempt) -> bool:
    """Whether the call reserved dollars: only then is its usage priced (and its billed figures read)."""
    reservation = call.reservation
    return reservation is not None and reservation.reserved_in(MICRO_USD) > 0


def settled_cost(enforcer: Enforcer, binding: Binding, call: Attempt, usage: Usage) -> int | None:
    """The call's exact cost in micro-dollars (``None``: unknown, it keeps its reservation), recorded on its
    span, the cost counter and the spend ledger."""
    if not is_priced(call):
        return None
    decision = call.plan.decision
    priced = exact_cost(call.generation.policy.prices, usage, decision.model, call.cache_ttl)
    if priced is None:
        return None
    if call.span is not None:
        Auditor.annotate(call.span, {audit.COST: float(priced.dollars)})
    if priced.micro_dollars:
        enforcer.auditor.record_cost(decision.role, usage.model or decision.model, call.key.workspace, priced)
        principal = binding.principal
        if principal is not None and decision.role is not None:
            enforcer.quota.record_spend(principal.id, decision.role, priced.micro_dollars)
    return priced.micro_dollars
