"""The anthropic SDK middleware that governs every request a scoped client sends.

A governed client is a genuine ``anthropic.Anthropic`` / ``AsyncAnthropic`` derived with
``with_options(middleware=[..., Governor])``. The SDK runs the middleware once per HTTP attempt,
inside its retry loop and inside its own call span, so:

* the policy is checked on every attempt (it is pure), but the request is counted against RPM on the
  first attempt only (``request.retries_taken == 0``), and the decision span is written once;
* a denial raises one of our errors, which the SDK neither wraps nor retries, before any byte is sent;
* the ``claude_rbac.*`` attributes go on the SDK's call span (the current span here): no second span.

Token buckets are reserved per attempt (each attempt could be billed) and settled from the usage
the response reports; a failed attempt gives its whole reservation back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from anthropic import APIRequest, Middleware
from anthropic._response import APIResponse, AsyncAPIResponse
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from . import audit
from .calls import CallPlan, plan_call
from .errors import AccessDenied, BackendUnavailable, InvalidRequest, NotAuthenticated, RateLimited, RBACError
from .keys import ActiveKey
from .policy import Decision, Principal, Role, Scope
from .quota import Bucket, Reservation, StorageFailure
from .usage import AsyncUsageStream, Usage, UsageStream, usage_of

if TYPE_CHECKING:
    from anthropic._middleware import AsyncCallNext, CallNext

    from .rbac import RBAC

__all__ = ["Binding", "Governor", "error_for"]

log = logging.getLogger("claude_rbac")


def error_for(decision: Decision) -> RBACError:
    """The exception a denial raises."""
    if decision.reason == "unauthenticated":
        return NotAuthenticated(decision.message or "Sign in to use Claude.")
    if decision.reason == "backend_unavailable":
        return BackendUnavailable(decision.message or "Access control is temporarily unavailable.")
    return AccessDenied(decision.message or "Access denied.", reason=decision.reason)


@dataclass(frozen=True, slots=True)
class Binding:
    """Who a derived client acts for, under which route scope, on which workspace key."""

    principal: Principal | None
    scope: Scope
    role: Role | None
    key: ActiveKey
    route: str | None
    enforced: bool


@dataclass(slots=True)
class _Admitted:
    plan: CallPlan
    request: APIRequest
    reservation: Reservation | None
    attributes: dict[str, AttributeValue]


class Governor(Middleware):
    """One instance per derived client. Holds no per-request state: everything lives in locals."""

    def __init__(self, rbac: RBAC, binding: Binding) -> None:
        self._rbac = rbac
        self._binding = binding
        # Memos: a client makes the same decisions over and over; both are bounded and never hold a prompt.
        self._attribute_memo: dict[tuple[Decision, str | None], dict[str, AttributeValue]] = {}
        self._bucket_memo: dict[tuple[bool, str], tuple[Bucket, ...]] = {}

    def __repr__(self) -> str:
        principal = self._binding.principal
        return f"<Governor principal={principal!r} scope={self._binding.scope.name!r}>"

    # -- sync ---------------------------------------------------------------------------------------

    def handle(self, request: APIRequest, call_next: CallNext) -> APIResponse[Any]:
        plan, attributes, first = self._decide(request)
        reservation = None
        recorded = False
        if buckets := self._buckets(plan, first):
            try:
                reservation = self._rbac.quota.acquire(buckets)
            except RateLimited as exc:
                recorded = self._limited(plan, attributes, exc)
            except StorageFailure as exc:
                attributes = self._storage_failed(plan, attributes, exc)
        admitted = self._admit(plan, request, reservation, attributes, first and not recorded)
        try:
            response = call_next(admitted.request)
        except BaseException:
            self._settle(admitted, Usage(complete=True))
            raise
        return self._respond(response, admitted)

    def _settle(self, admitted: _Admitted, usage: Usage) -> None:
        self._record_usage(admitted, usage)
        if admitted.reservation is None:
            return
        try:
            self._rbac.quota.settle(admitted.reservation, self._used(admitted, usage))
        except StorageFailure:
            log.warning("claude_rbac: could not settle token usage: the limits storage failed")

    def _respond(self, response: APIResponse[Any], admitted: _Admitted) -> APIResponse[Any]:
        if not isinstance(response, APIResponse):
            return response  # an inner middleware answered; keep the reservation as it is
        http = response.http_response
        if not http.is_success:
            self._upstream_error(http.status_code, http.read() if http.status_code == 403 else b"")
            self._settle(admitted, Usage(complete=True))
            return response
        if _is_sse(http.headers):
            http.stream = UsageStream(http.stream, lambda usage: self._settle(admitted, usage))  # type: ignore[arg-type]
        elif admitted.plan.operation == "messages.create" and http.is_closed:
            self._settle(admitted, _parsed_usage(response.parse()))
        return response

    # -- async --------------------------------------------------------------------------------------

    async def handle_async(self, request: APIRequest, call_next: AsyncCallNext) -> AsyncAPIResponse[Any]:
        plan, attributes, first = self._decide(request)
        reservation = None
        recorded = False
        if buckets := self._buckets(plan, first):
            try:
                reservation = await self._rbac.quota.aacquire(buckets)
            except RateLimited as exc:
                recorded = self._limited(plan, attributes, exc)
            except StorageFailure as exc:
                attributes = self._storage_failed(plan, attributes, exc)
        admitted = self._admit(plan, request, reservation, attributes, first and not recorded)
        try:
            response = await call_next(admitted.request)
        except BaseException:
            await self._asettle(admitted, Usage(complete=True))
            raise
        return await self._arespond(response, admitted)

    async def _asettle(self, admitted: _Admitted, usage: Usage) -> None:
        self._record_usage(admitted, usage)
        if admitted.reservation is None:
            return
        try:
            await self._rbac.quota.asettle(admitted.reservation, self._used(admitted, usage))
        except StorageFailure:
            log.warning("claude_rbac: could not settle token usage: the limits storage failed")

    async def _arespond(self, response: AsyncAPIResponse[Any], admitted: _Admitted) -> AsyncAPIResponse[Any]:
        if not isinstance(response, AsyncAPIResponse):
            return response
        http = response.http_response
        if not http.is_success:
            self._upstream_error(http.status_code, await http.aread() if http.status_code == 403 else b"")
            await self._asettle(admitted, Usage(complete=True))
            return response
        if _is_sse(http.headers):
            http.stream = AsyncUsageStream(
                http.stream,  # type: ignore[arg-type]
                lambda usage: self._asettle(admitted, usage),
            )
        elif admitted.plan.operation == "messages.create" and http.is_closed:
            await self._asettle(admitted, _parsed_usage(await response.parse()))
        return response

    # -- shared -------------------------------------------------------------------------------------

    def _decide(self, request: APIRequest) -> tuple[CallPlan, dict[str, AttributeValue], bool]:
        """The policy's plan for this attempt; raises (after recording) when it is a denial."""
        rbac = self._rbac
        binding = self._binding
        first = request.retries_taken == 0
        role = binding.role
        try:
            plan = plan_call(
                rbac.policy,
                binding.principal,
                binding.scope,
                request.method,
                request.url,
                request.json,
                estimate=rbac.token_estimator,
                count_tokens=role is not None and _has_token_limits(role),
                enforce=binding.enforced,
            )
        except (InvalidRequest, AccessDenied) as exc:
            decision = Decision(False, exc.reason, role.name if role else None, message=exc.message)
            attributes = self._attributes(CallPlan(None, decision), first)
            if first or binding.enforced:  # a shadow-mode call the SDK retries is one decision, not one per attempt
                rbac.auditor.record(decision, attributes)
            if binding.enforced or isinstance(exc, InvalidRequest):
                raise
            return CallPlan(None, decision), attributes, first
        if plan.decision.allowed and binding.key.key_id is not None:
            plan = self._check_revocation(plan, binding.key.key_id, first)
        attributes = self._attributes(plan, first)
        if not plan.decision.allowed:
            if first or binding.enforced:
                rbac.auditor.record(plan.decision, attributes)
            if binding.enforced:
                raise error_for(plan.decision)
        return plan, attributes, first

    def _check_revocation(self, plan: CallPlan, key_id: str, first: bool) -> CallPlan:
        try:
            revoked = self._rbac.key_revoked(key_id)
        except Exception as exc:
            # A revocation source that cannot answer fails closed, like a storage that cannot.
            log.error("claude_rbac: the revocation source raised %s; denying", type(exc).__name__)
            decision = _denied(plan.decision, "backend_unavailable", "Access control is temporarily unavailable.")
            self._rbac.auditor.record(
                decision, self._attributes(CallPlan(plan.operation, decision), first), failure=exc
            )
            raise BackendUnavailable() from None
        if not revoked:
            return plan
        decision = _denied(plan.decision, "key_revoked", "The API key for this workspace has been revoked.")
        return CallPlan(plan.operation, decision, counts_rpm=False)

    def _attributes(self, plan: CallPlan, first: bool) -> dict[str, AttributeValue]:
        binding = self._binding
        memo_key = (plan.decision, plan.operation)
        attributes = self._attribute_memo.get(memo_key)
        if attributes is None:
            attributes = self._rbac.auditor.attributes(
                plan.decision,
                binding.principal,
                key_id=binding.key.key_id,
                workspace=binding.key.workspace,
                route=binding.route,
                enforced=binding.enforced,
                operation=plan.operation,
            )
            if len(self._attribute_memo) >= 256:
                self._attribute_memo.clear()
            self._attribute_memo[memo_key] = attributes
        if first:
            call_span = trace.get_current_span()
            audit.Auditor.annotate(call_span, attributes)
            if plan.decision.clamped and plan.decision.max_tokens_effective is not None and binding.enforced:
                audit.Auditor.annotate(call_span, {"gen_ai.request.max_tokens": plan.decision.max_tokens_effective})
        return attributes

    def _buckets(self, plan: CallPlan, first: bool) -> tuple[Bucket, ...]:
        role = self._binding.role
        principal = self._binding.principal
        if not plan.decision.allowed or role is None or principal is None:
            return ()
        counts_rpm = first and plan.counts_rpm
        # Bucket keys depend on the UTC day only through calendar budgets; the memo is keyed by it.
        day = time.strftime("%Y-%m-%d", time.gmtime()) if role.budget or role.pool_budget else ""
        memo_key = (counts_rpm, day)
        template = self._bucket_memo.get(memo_key)
        if template is None:
            if any(key[1] != day for key in self._bucket_memo):
                self._bucket_memo.clear()  # a new UTC day: new budget windows
            scope = self._binding.scope
            template = self._rbac.quota.buckets(
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
            )
            self._bucket_memo[memo_key] = template
        if plan.tokens <= 0:
            return tuple(bucket for bucket in template if bucket.kind == "rpm")
        return tuple(bucket if bucket.kind == "rpm" else bucket.with_cost(plan.tokens) for bucket in template)

    def _limited(self, plan: CallPlan, attributes: dict[str, AttributeValue], exc: RateLimited) -> bool:
        """Record the refusal; raise it, or (shadow mode) return True: the decision is recorded, go on."""
        decision = _denied(plan.decision, exc.reason, exc.message)
        attributes = {**attributes, audit.DECISION: "deny", audit.REASON: exc.reason}
        audit.Auditor.annotate(trace.get_current_span(), attributes)
        self._rbac.auditor.record(decision, attributes)
        if self._binding.enforced:
            raise exc
        return True

    def _storage_failed(
        self, plan: CallPlan, attributes: dict[str, AttributeValue], exc: StorageFailure
    ) -> dict[str, AttributeValue]:
        """Fail closed (raise ``BackendUnavailable``), or, when allowed by option or shadow mode, go on marked."""
        rbac = self._rbac
        allow = rbac.on_storage_error == "allow" or not self._binding.enforced
        attributes = {**attributes, audit.STORAGE_ERROR: True}
        if not allow:
            attributes.update({audit.DECISION: "deny", audit.REASON: "backend_unavailable"})
        audit.Auditor.annotate(trace.get_current_span(), attributes)
        if allow:
            log.warning("claude_rbac: limits storage failed (%s); allowing the call (on_storage_error='allow')", exc)
            return attributes
        log.error("claude_rbac: limits storage failed (%s); denying the call (fail closed)", exc)
        decision = _denied(plan.decision, "backend_unavailable", "Access control is temporarily unavailable.")
        rbac.auditor.record(decision, attributes, failure=exc)
        raise BackendUnavailable() from None

    def _admit(
        self,
        plan: CallPlan,
        request: APIRequest,
        reservation: Reservation | None,
        attributes: dict[str, AttributeValue],
        first: bool,
    ) -> _Admitted:
        if first and plan.decision.allowed:
            self._rbac.auditor.record(plan.decision, attributes)
        if plan.body is not None:
            request = _with_body(request, plan.body)
        return _Admitted(plan, request, reservation, attributes)

    def _upstream_error(self, status: int, body: bytes) -> None:
        if status == 403 and b"tenant_restriction_violation" in body:
            audit.Auditor.annotate(trace.get_current_span(), {audit.TENANT_VIOLATION: True})
            raise AccessDenied(
                "Access restricted by network policy. Contact IT Administrator.",
                reason="tenant_restriction_violation",
            )

    def _record_usage(self, admitted: _Admitted, usage: Usage) -> None:
        if usage.counted or usage.cache_read_input_tokens:
            decision = admitted.plan.decision
            self._rbac.auditor.record_tokens(decision.role, decision.model, usage.by_type())

    @staticmethod
    def _used(admitted: _Admitted, usage: Usage) -> int:
        """What the attempt cost: its counted usage, or (for a stream cut short) all that was reserved."""
        assert admitted.reservation is not None
        if not usage.complete:
            return admitted.reservation.reserved
        return usage.counted


def _denied(decision: Decision, reason: str, message: str) -> Decision:
    return Decision(
        False,
        reason,
        decision.role,
        decision.model,
        decision.max_tokens_requested,
        decision.max_tokens_effective,
        message,
    )


def _has_token_limits(role: Role) -> bool:
    return bool(role.tpm or role.budget or role.pool_tpm or role.pool_budget)


def _is_sse(headers: Mapping[str, str]) -> bool:
    return headers.get("content-type", "").startswith("text/event-stream")


def _parsed_usage(data: object) -> Usage:
    return usage_of(data) or Usage(complete=False)


def _with_body(request: APIRequest, body: dict[str, Any]) -> APIRequest:
    # A shallow copy: APIRequest.copy() deep-copies the whole prompt, and we only replace top-level keys.
    options = request.options.model_copy()
    options.json_data = body
    return APIRequest(
        options=options,
        cast_to=request.cast_to,
        stream=request.stream,
        stream_cls=request.stream_cls,
        retries_taken=request.retries_taken,
    )
