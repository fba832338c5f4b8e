"""The anthropic SDK middleware that governs every request a scoped client sends.

A governed client is a genuine ``anthropic.Anthropic`` / ``AsyncAnthropic`` derived with
``with_options(middleware=[..., Governor])``. The SDK runs the middleware once per HTTP attempt,
inside its retry loop and inside its own call span, so:

* the policy in force is read once per attempt (a reload applies to clients already handed out) and
  checked on every attempt (it is pure), but the request is counted against RPM on the first attempt
  only (``request.retries_taken == 0``), and the decision span is written once;
* a denial raises one of our errors, which the SDK neither wraps nor retries, before any byte is sent;
* the governor, not the client, carries the credentials: it sets the workspace's key, the tenant
  header and the workspace's absolute URL on each request it admits, so a client holds no key and a
  caller's headers or base URL cannot change where a key goes;
* the ``claude_rbac.*`` attributes go on the SDK's call span (the current span here): no second span.

Token buckets are reserved per attempt (each attempt could be billed) and settled from the usage
the response reports; a failed attempt gives its whole reservation back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from anthropic import APIRequest, APIResponse, AsyncAPIResponse, AsyncCallNext, CallNext, Middleware, NotGiven, omit
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from .. import audit
from ..errors import UNAVAILABLE, error_for
from ..policy import (
    NONSTREAMING_MAX_TOKENS,
    ORG_IDS_HEADER,
    CallPlan,
    plan_call,
)
from ._attempt import Attempt, Binding
from ._audit import Auditor
from ._enforcer import Enforcer, Generation
from ._keys import ActiveKey
from ._limits import Limiter
from ._usage import AsyncUsageStream, Usage, UsageStream, usage_of

__all__ = ["Binding", "Governor"]

log = logging.getLogger("claude_rbac")
_MEMO_SIZE = 256


class Governor(Middleware):
    """One instance per governed client. Holds no per-request state: everything lives in locals."""

    def __init__(self, enforcer: Enforcer, binding: Binding, *, default_base_url: str) -> None:
        self._enforcer = enforcer
        self._binding = binding
        self._default_base_url = default_base_url.rstrip("/")
        self._limiter = Limiter(enforcer, binding)
        # A client makes the same decisions over and over: memoised attributes, bounded, never a prompt.
        self._attribute_memo: dict[tuple[Any, ...], dict[str, AttributeValue]] = {}

    def __repr__(self) -> str:
        return f"<Governor principal={self._binding.principal!r} scope={self._binding.scope.name!r}>"

    @property
    def binding(self) -> Binding:
        return self._binding

    # -- sync ---------------------------------------------------------------------------------------

    def handle(self, request: APIRequest, call_next: CallNext) -> APIResponse[Any]:
        call = self._decide(request)
        call.reservation = self._limiter.acquire(call)
        self._admitted(call)
        try:
            response = call_next(self._outgoing(request, call))
        except BaseException:
            self._settle(call, Usage(complete=True))
            raise
        if not isinstance(response, APIResponse):
            return response  # an inner middleware answered; keep the reservation as it is
        http = response.http_response
        if not http.is_success:
            self._upstream_error(http.status_code, http.read() if http.status_code == 403 else b"")
            self._settle(call, Usage(complete=True))
            return response
        if _is_sse(http.headers):
            http.stream = UsageStream(http.stream, lambda usage: self._settle(call, usage))  # type: ignore[arg-type]
        elif call.plan.operation == "messages.create" and http.is_closed:
            self._settle(call, _parsed_usage(response.parse()))
        return response

    def _settle(self, call: Attempt, usage: Usage) -> None:
        self._record_usage(call, usage)
        self._limiter.settle(call.reservation, usage)

    # -- async --------------------------------------------------------------------------------------

    async def handle_async(self, request: APIRequest, call_next: AsyncCallNext) -> AsyncAPIResponse[Any]:
        call = self._decide(request)
        call.reservation = await self._limiter.aacquire(call)
        self._admitted(call)
        try:
            response = await call_next(self._outgoing(request, call))
        except BaseException:
            await self._asettle(call, Usage(complete=True))
            raise
        if not isinstance(response, AsyncAPIResponse):
            return response
        http = response.http_response
        if not http.is_success:
            self._upstream_error(http.status_code, await http.aread() if http.status_code == 403 else b"")
            await self._asettle(call, Usage(complete=True))
            return response
        if _is_sse(http.headers):
            http.stream = AsyncUsageStream(http.stream, lambda usage: self._asettle(call, usage))  # type: ignore[arg-type]
        elif call.plan.operation == "messages.create" and http.is_closed:
            await self._asettle(call, _parsed_usage(await response.parse()))
        return response

    async def _asettle(self, call: Attempt, usage: Usage) -> None:
        self._record_usage(call, usage)
        await self._limiter.asettle(call.reservation, usage)

    # -- deciding -----------------------------------------------------------------------------------

    def _decide(self, request: APIRequest) -> Attempt:
        """The policy's plan for this attempt; raises (after recording) when it is a denial."""
        enforcer = self._enforcer
        binding = self._binding
        generation = enforcer.generation
        role = generation.role_of(binding.principal)
        enforced = generation.enforced(role)
        key = generation.key_for(role)
        first = request.retries_taken == 0
        long_request = enforcer.long_request_check and isinstance(request.timeout, NotGiven)
        plan = plan_call(
            generation.policy,
            binding.principal,
            binding.scope,
            request.method,
            request.url,
            request.json,
            estimate=enforcer.token_estimator,
            count_tokens=role is not None and role.counts_tokens,
            enforce=enforced,
            nonstreaming_limit=NONSTREAMING_MAX_TOKENS if long_request else None,
        )
        plan = self._check_request(generation, plan, request, key)
        if plan.decision.allowed:
            plan = self._check_revocation(generation, plan, key, enforced, first)
        call = Attempt(generation, plan, key, enforced, first, {})
        call.attributes = self._attributes(call)
        decision = plan.decision
        if not decision.allowed:
            # A revoked key is never sent and a malformed request cannot be: both are refused in any mode.
            refused = enforced or decision.reason in ("invalid_request", "key_revoked", "tenant_restriction_violation")
            if first or refused:  # a shadow-mode call the SDK retries is one decision, not one per attempt
                enforcer.auditor.record(decision, call.attributes)
            if refused:
                raise error_for(decision.reason, decision.message)
        return call

    def _check_request(self, generation: Generation, plan: CallPlan, request: APIRequest, key: ActiveKey) -> CallPlan:
        """Where the request goes and which tenant it names: only the workspace's host, only our tenant header."""
        url = request.url
        if "://" in url and not url.startswith(f"{self._base_url(key)}/"):
            message = "This client may only call its workspace's API host."
            return CallPlan(plan.operation, plan.decision.denied("endpoint_not_allowed", message), counts_rpm=False)
        org_ids = generation.allowed_org_ids
        asked = _header(request.headers, ORG_IDS_HEADER)
        if org_ids is not None and asked is not None and asked != org_ids:
            message = f"The {ORG_IDS_HEADER} header is set by the policy; a request may not change it."
            return CallPlan(
                plan.operation, plan.decision.denied("tenant_restriction_violation", message), counts_rpm=False
            )
        return plan

    def _check_revocation(
        self, generation: Generation, plan: CallPlan, key: ActiveKey, enforced: bool, first: bool
    ) -> CallPlan:
        if key.key_id is None:
            return plan
        try:
            revoked = self._enforcer.key_revoked(generation, key.key_id)
        except Exception as exc:
            # A revocation source that cannot answer fails closed, like a storage that cannot.
            log.error("claude_rbac: the revocation source raised %s; denying", type(exc).__name__)
            decision = plan.decision.denied("backend_unavailable", UNAVAILABLE)
            call = Attempt(generation, CallPlan(plan.operation, decision), key, enforced, first, {})
            self._enforcer.auditor.record(decision, self._attributes(call), failure=exc)
            raise error_for("backend_unavailable") from None
        if not revoked:
            return plan
        decision = plan.decision.denied("key_revoked", error_for("key_revoked").message)
        return CallPlan(plan.operation, decision, counts_rpm=False)

    def _attributes(self, call: Attempt) -> dict[str, AttributeValue]:
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
        attributes = self._attribute_memo.get(memo_key)
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
            if len(self._attribute_memo) >= _MEMO_SIZE:
                self._attribute_memo.clear()
            self._attribute_memo[memo_key] = attributes
        if call.first:
            call_span = trace.get_current_span()
            Auditor.annotate(call_span, attributes)
            if decision.clamped and decision.max_tokens_effective is not None and call.enforced:
                Auditor.annotate(call_span, {"gen_ai.request.max_tokens": decision.max_tokens_effective})
        return attributes

    def _admitted(self, call: Attempt) -> None:
        if call.first and call.plan.decision.allowed and not call.recorded:
            self._enforcer.auditor.record(call.plan.decision, call.attributes)

    # -- sending ------------------------------------------------------------------------------------

    def _base_url(self, key: ActiveKey) -> str:
        return (key.base_url or self._default_base_url).rstrip("/")

    def _outgoing(self, request: APIRequest, call: Attempt) -> APIRequest:
        """The request as admitted: the policy's body, the workspace's key, URL and tenant header.

        A shallow copy: ``APIRequest.copy()`` deep-copies the whole prompt, and only top-level fields change.
        """
        options = request.options.model_copy()
        if call.plan.body is not None:
            options.json_data = call.plan.body
        headers: dict[str, Any] = dict(request.headers)
        headers["X-Api-Key"] = call.key.key or omit
        headers["Authorization"] = omit  # the workspace key is the only credential that leaves
        if call.generation.allowed_org_ids is not None:
            headers[ORG_IDS_HEADER] = call.generation.allowed_org_ids
        options.headers = headers
        if "://" not in request.url:
            options.url = f"{self._base_url(call.key)}/{request.url.lstrip('/')}"
        return APIRequest(
            options=options,
            cast_to=request.cast_to,
            stream=request.stream,
            stream_cls=request.stream_cls,
            retries_taken=request.retries_taken,
        )

    def _upstream_error(self, status: int, body: bytes) -> None:
        if status == 403 and b"tenant_restriction_violation" in body:
            Auditor.annotate(trace.get_current_span(), {audit.TENANT_VIOLATION: True})
            raise error_for("tenant_restriction_violation")

    def _record_usage(self, call: Attempt, usage: Usage) -> None:
        if usage.counted or usage.cache_read_input_tokens:
            decision = call.plan.decision
            self._enforcer.auditor.record_tokens(decision.role, decision.model, usage.by_type())


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value if isinstance(value, str) else ""
    return None


def _is_sse(headers: Mapping[str, str]) -> bool:
    return headers.get("content-type", "").startswith("text/event-stream")


def _parsed_usage(data: object) -> Usage:
    return usage_of(data) or Usage(complete=False)
