"""The governed call's limits: which buckets an attempt must fit in, taking them, and settling them.

Sync and async are twins of one shape; the storage decides how a hit travels (memory is in-process,
Redis one round trip). A limit the call breaks is recorded and raised, or, in shadow mode, recorded
and let through; a storage that fails is denied (fail closed) unless ``on_storage_error="allow"``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Final

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from .. import audit
from ..errors import UNAVAILABLE, RateLimited, error_for
from ..policy import UNRESTRICTED, Principal, Role, Scope, Spend
from ..quota import MICRO_USD, Bucket, Reservation, SpendScope, StorageFailure
from ._attempt import Attempt, Binding
from ._audit import Auditor
from ._enforcer import Enforcer
from ._usage import Usage

__all__ = ["Limiter", "request_buckets", "spend_buckets"]

log = logging.getLogger("claude_rbac")
_MEMO_SIZE: Final = 64


class Limiter:
    """The buckets of one governed client's calls (per principal and route scope), and their hits.

    A call counts one request against the role's (and the route's) rpm; a batch counts one per request it
    holds, so a batch cannot carry more requests a minute than the role may send one by one.
    ``count_tokens`` counts against request buckets of its own at the same rpm (Anthropic also keeps token
    counting's rate limits apart from messages'), so a token estimator that calls it does not halve the rpm.
    """

    def __init__(
        self,
        enforcer: Enforcer,
        binding: Binding,
        attributes: Callable[[Attempt], dict[str, AttributeValue]],
    ) -> None:
        self._enforcer = enforcer
        self._binding = binding
        self._attributes = attributes
        """The attempt's decision attributes (built on demand: a refusal here is recorded with them)."""
        # Buckets depend on the generation (the role's limits) and the operation's kind; their windows are
        # read at each admission.
        self._memo: dict[tuple[int, bool, bool], tuple[Bucket, ...]] = {}

    # -- which buckets ------------------------------------------------------------------------------

    def buckets(self, attempt: Attempt) -> tuple[Bucket, ...]:
        plan = attempt.plan
        principal = self._binding.principal
        role = attempt.generation.role_of(principal)
        if not plan.decision.allowed or role is None or principal is None:
            return ()
        counts_rpm = attempt.first and plan.counts_rpm
        counting = plan.operation == "messages.count_tokens"
        memo_key = (attempt.generation.number, counts_rpm, counting)
        template = self._memo.get(memo_key)
        if template is None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            scope = self._binding.scope
            template = self._enforcer.quota.buckets(
                role=role.name,
                principal_id=principal.id,
                rpm=role.rpm if counts_rpm else None,
                scope_name=scope.name,
                scope_rpm=scope.rpm if counts_rpm else None,
                tpm=role.tpm,
                budget_day=role.budget.day,
                budget_month=role.budget.month,
                pool_tpm=role.pool_tpm,
                pool_budget_day=role.pool_budget.day,
                pool_budget_month=role.pool_budget.month,
                tokens=1,
                spend=_spend_limits(role, scope),
                workspace=attempt.generation.workspace_of(role),
                micro_usd=1,
            )
            if counting:  # count_tokens has request buckets of its own, at the same rpm
                template = tuple(_counting(bucket) if bucket.kind == "rpm" else bucket for bucket in template)
            self._memo[memo_key] = template
        requests = plan.requests if counts_rpm else 1
        rpm = tuple(
            bucket if requests == 1 else bucket.with_cost(requests) for bucket in template if bucket.kind == "rpm"
        )
        if plan.tokens <= 0:
            return rpm
        return rpm + tuple(
            bucket.with_cost(plan.spend if bucket.unit == MICRO_USD else plan.tokens)
            for bucket in template
            if bucket.kind != "rpm" and (plan.spend > 0 or bucket.unit != MICRO_USD)
        )

    # -- taking them --------------------------------------------------------------------------------

    def acquire(self, attempt: Attempt) -> Reservation | None:
        buckets = self.buckets(attempt)
        if not buckets:
            return None
        try:
            return self._enforcer.quota.acquire(buckets)
        except RateLimited as exc:
            self._limited(attempt, exc)
        except StorageFailure as exc:
            self._storage_failed(attempt, exc)
        return None

    async def aacquire(self, attempt: Attempt) -> Reservation | None:
        buckets = self.buckets(attempt)
        if not buckets:
            return None
        try:
            return await self._enforcer.quota.aacquire(buckets)
        except RateLimited as exc:
            self._limited(attempt, exc)
        except StorageFailure as exc:
            self._storage_failed(attempt, exc)
        return None

    def _limited(self, attempt: Attempt, exc: RateLimited) -> None:
        """Record the refusal; raise it, or (shadow mode) mark it recorded and go on."""
        decision = attempt.plan.decision.denied(exc.reason, exc.message)
        attributes = {**self._attributes(attempt), audit.DECISION: "deny", audit.REASON: exc.reason}
        Auditor.annotate(trace.get_current_span(), attributes)
        self._enforcer.auditor.record(decision, attributes)
        if attempt.enforced:
            raise exc
        attempt.recorded = True

    def _storage_failed(self, attempt: Attempt, exc: StorageFailure) -> None:
        """Fail closed (raise ``BackendUnavailable``), or, when allowed by option or shadow mode, go on marked."""
        allow = self._enforcer.on_storage_error == "allow" or not attempt.enforced
        attributes = {**self._attributes(attempt), audit.STORAGE_ERROR: True}
        if not allow:
            attributes.update({audit.DECISION: "deny", audit.REASON: "backend_unavailable"})
        span = trace.get_current_span()
        Auditor.annotate(span, attributes)
        span.record_exception(exc)  # its message names the cause, scrubbed of URIs, credentials and keys
        attempt.attributes = attributes
        if allow:
            log.warning("claude_rbac: limits storage failed (%s); allowing the call (on_storage_error='allow')", exc)
            return
        log.error("claude_rbac: limits storage failed (%s); denying the call (fail closed)", exc)
        decision = attempt.plan.decision.denied("backend_unavailable", UNAVAILABLE)
        self._enforcer.auditor.record(decision, attributes, failure=exc)
        raise error_for("backend_unavailable") from None

    # -- settling them ------------------------------------------------------------------------------

    def settle(self, reservation: Reservation | None, usage: Usage, micro_usd: int | None = None) -> None:
        """Settle the tokens, and the dollars at ``micro_usd`` (``None``: unknown, the reservation stands)."""
        if reservation is None or not reservation.held:  # requests are counted up front: nothing to settle
            return
        try:
            self._enforcer.quota.settle(reservation, _used(reservation, usage, micro_usd))
        except StorageFailure:
            log.warning("claude_rbac: could not settle token usage: the limits storage failed")

    async def asettle(self, reservation: Reservation | None, usage: Usage, micro_usd: int | None = None) -> None:
        if reservation is None or not reservation.held:
            return
        try:
            await self._enforcer.quota.asettle(reservation, _used(reservation, usage, micro_usd))
        except StorageFailure:
            log.warning("claude_rbac: could not settle token usage: the limits storage failed")


def _counting(bucket: Bucket) -> Bucket:
    """The same request limit, counted apart for ``count_tokens`` (its key keeps the bucket's hash tag)."""
    return dataclasses.replace(bucket, key=f"{bucket.key}/count_tokens")


def _spend_limits(role: Role, scope: Scope) -> dict[SpendScope, tuple[int | None, int | None]]:
    """The spend limits (day, month) in micro-dollars of each scope that has one, checked in this order."""
    limits: dict[SpendScope, Spend] = {
        "principal": role.spend,
        "route": scope.spend,
        "pool": role.pool_spend,
        "workspace": role.workspace_spend,
    }
    return {name: (spend.day, spend.month) for name, spend in limits.items() if spend}


def _used(reservation: Reservation, usage: Usage, micro_usd: int | None) -> dict[str, int]:
    """What the attempt cost: its counted usage (tokens) and its exact cost (micro-dollars), each when known;
    a unit left out (a stream cut short, a usage that cannot be priced) keeps all that was reserved."""
    used: dict[str, int] = {}
    if usage.complete:
        used["tokens"] = usage.counted
    if micro_usd is not None:
        used[MICRO_USD] = micro_usd
    return used


def request_buckets(enforcer: Enforcer, principal: Principal | None, scope: Scope | None) -> tuple[Bucket, ...]:
    """The principal's request buckets, to read (``rbac.rate_limits``): the role's rpm and the route's."""
    role = enforcer.generation.role_of(principal)
    if role is None or principal is None:
        return ()
    chosen = scope or UNRESTRICTED
    return enforcer.quota.buckets(
        role=role.name, principal_id=principal.id, rpm=role.rpm, scope_name=chosen.name, scope_rpm=chosen.rpm
    )


def spend_buckets(enforcer: Enforcer, principal: Principal | None, scope: Scope | None) -> tuple[Bucket, ...]:
    """The principal's spend windows, to read (``rbac.spend``): its own, the route's, the pool's, the workspace's."""
    generation = enforcer.generation
    role = generation.role_of(principal)
    if role is None or principal is None:
        return ()
    chosen = scope or UNRESTRICTED
    return enforcer.quota.buckets(
        role=role.name,
        principal_id=principal.id,
        rpm=None,
        scope_name=chosen.name,
        spend=_spend_limits(role, chosen),
        workspace=generation.workspace_of(role),
        micro_usd=1,
    )
