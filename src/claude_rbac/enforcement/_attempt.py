"""One attempt the governor admitted: what the policy made of it, what it holds, how it was recorded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from ..policy import CallPlan, Principal, Scope
from ..quota import Reservation
from ._enforcer import Enforcer, Generation
from ._keys import ActiveKey

__all__ = ["Attempt", "Binding", "Describer"]


@dataclass(frozen=True, slots=True)
class Binding:
    """Who a governed client acts for, and under which route scope. The grants come from the policy in force."""

    principal: Principal | None
    scope: Scope
    route: str | None = None


@dataclass(slots=True)
class Attempt:
    generation: Generation
    """The policy in force when the attempt was decided: the whole attempt is judged by it."""
    plan: CallPlan
    key: ActiveKey
    enforced: bool
    first: bool
    """The first attempt of the call (``retries_taken == 0``): the one that counts against RPM and is recorded."""
    reservation: Reservation | None = None
    attributes: dict[str, AttributeValue] | None = None
    """The span attributes, when they differ from the decision's (a storage failure let through); else built on
    demand from the decision, and only when something records them."""
    recorded: bool = False
    """The decision span of this call is written (a shadow-mode rate limit records its would-be denial)."""
    span: Span | None = None
    """The SDK's call span, for the cost attributes settled after the response (a stream ends later)."""
    cache_ttl: str | None = None
    """The dearest ``cache_control`` TTL of a request that reserves dollars (how unsplit cache writes are priced)."""


_MEMO_SIZE: Final = 256


class Describer:
    """The span attributes of a governed client's decisions (its governor's and its limiter's records)."""

    def __init__(self, enforcer: Enforcer, binding: Binding) -> None:
        self._enforcer = enforcer
        self._binding = binding
        # A client makes the same decisions over and over: memoised attributes, bounded, never a prompt.
        self._memo: dict[tuple[Any, ...], dict[str, AttributeValue]] = {}

    def attributes(self, call: Attempt) -> dict[str, AttributeValue]:
        """The decision's span attributes, built only when something records them (memoised: never a prompt)."""
        if call.attributes is not None:
            return call.attributes  # set by a storage failure let through
        decision = call.plan.decision
        generation = call.generation
        memo_key = (
            decision,
            call.plan.operation,
            call.key.key_id,
            call.key.workspace,
            call.enforced,
            generation.number,
        )
        attributes = self._memo.get(memo_key)
        if attributes is None:
            attributes = self._enforcer.auditor.attributes(
                decision,
                self._binding.principal,
                key_id=call.key.key_id,
                workspace=call.key.workspace,
                route=self._binding.route,
                enforced=call.enforced,
                operation=call.plan.operation,
                revision=generation.revision,
                stale=generation.stale,
            )
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[memo_key] = attributes
        return attributes
