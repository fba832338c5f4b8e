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

import json
import logging
from collections.abc import Mapping
from typing import Any, Final, NoReturn

from anthropic import APIRequest, APIResponse, AsyncAPIResponse, AsyncCallNext, CallNext, Middleware, NotGiven, omit
from opentelemetry import trace

from .. import audit
from ..errors import UNAVAILABLE, error_for
from ..policy import (
    BATCH_READS,
    NONSTREAMING_MAX_TOKENS,
    ORG_IDS_HEADER,
    CallPlan,
    batch_id_of,
    plan_call,
)
from ._attempt import Attempt, Binding, Describer
from ._audit import Auditor
from ._batch_spend import akeep_hold, awatch_results, keep_hold, watch_results
from ._enforcer import Enforcer, Generation
from ._keys import ActiveKey
from ._limits import Limiter
from ._spend import is_priced, note_reservation, settled_cost
from ._usage import AsyncUsageStream, Usage, UsageStream, no_usage, parsed_usage

__all__ = ["REFUSED_IN_ANY_MODE", "Binding", "Governor"]

log = logging.getLogger("claude_rbac")
REFUSED_IN_ANY_MODE: Final = frozenset(
    {"invalid_request", "key_revoked", "tenant_restriction_violation", "host_not_allowed"}
)
"""Denials shadow mode enforces too: a revoked key, another tenant or another host would take the key where it
must not go, and a malformed request cannot be sent at all."""


class Governor(Middleware):
    """One instance per governed client. Holds no per-request state: everything lives in locals."""

    def __init__(self, enforcer: Enforcer, binding: Binding, *, default_base_url: str) -> None:
        self._enforcer = enforcer
        self._binding = binding
        self._default_base_url = default_base_url.rstrip("/")
        # The limiter records refusals with the decision's attributes too. It gets the describer's bound method,
        # not one of the governor's: one of those would be a cycle (governor, limiter, method, governor), and a
        # governed client dropped with its governor is then freed only by the garbage collector.
        self._attributes = Describer(enforcer, binding).attributes
        self._limiter = Limiter(enforcer, binding, self._attributes)

    def __repr__(self) -> str:
        return f"<Governor principal={self._binding.principal!r} scope={self._binding.scope.name!r}>"

    @property
    def binding(self) -> Binding:
        return self._binding

    # -- sync ---------------------------------------------------------------------------------------

    def handle(self, request: APIRequest, call_next: CallNext) -> APIResponse[Any]:
        call = self._judge(request)
        if self._asks_revocation(call):
            try:
                revoked = self._enforcer.key_revoked(call.generation, call.key.key_id or "")
            except Exception as exc:
                self._unavailable(call, exc, "the revocation source")
            self._revocation_answered(call, revoked)
        if (owner := self._asks_owner(call)) is not None:
            try:
                owns = self._enforcer.batch_owners.owns(owner[0], owner[1])
            except Exception as exc:
                self._unavailable(call, exc, "the batch owners' storage")
            self._owner_answered(call, owns)
        self._conclude(call)
        call.reservation = self._limiter.acquire(call)
        note_reservation(call, request)
        self._admitted(call)
        try:
            response = call_next(self._outgoing(request, call))
        except BaseException:
            self._settle(call, no_usage())
            raise
        if not isinstance(response, APIResponse):
            return response  # an inner middleware answered; keep the reservation as it is
        http = response.http_response
        if not http.is_success:
            self._upstream_error(http.status_code, http.read() if http.status_code == 403 else b"")
            self._settle(call, no_usage())
            return response
        reads_usage = self._reads_usage(call)
        if call.plan.operation == "messages.create" and not reads_usage:
            return response  # streamed or not, nothing in the answer is wanted
        if _is_sse(http.headers):
            if reads_usage:
                http.stream = UsageStream(http.stream, lambda usage: self._settle(call, usage))  # type: ignore[arg-type]
        elif call.plan.operation == "messages.create" and http.is_closed:
            self._settle(call, parsed_usage(response.parse(), billed=is_priced(call)))
        elif call.plan.operation == "messages.batches.create" and (created := self._created_batch(http.read())):
            try:
                self._enforcer.batch_owners.bind(*created)
            except Exception as exc:
                self._unbound(exc)
            keep_hold(self._enforcer, self._binding, call, created[0])
        elif call.plan.operation == "messages.batches.results" and call.plan.batch_id is not None:
            watch_results(self._enforcer, call.plan.batch_id, http)
        return response

    def _reads_usage(self, call: Attempt) -> bool:
        """Whether the answer's usage is wanted: to settle what the call holds in token or dollar buckets (a
        priced call holds dollars), or for the token counter while metric points are recorded. A call limited
        by requests alone, with no meter, skips reading it (and a stream is passed on without a scanner)."""
        reservation = call.reservation
        return (reservation is not None and bool(reservation.held)) or self._enforcer.auditor.points_recorded()

    def _settle(self, call: Attempt, usage: Usage) -> None:
        self._record_usage(call, usage)
        self._limiter.settle(call.reservation, usage, settled_cost(self._enforcer, self._binding, call, usage))

    # -- async --------------------------------------------------------------------------------------

    async def handle_async(self, request: APIRequest, call_next: AsyncCallNext) -> AsyncAPIResponse[Any]:
        call = self._judge(request)
        if self._asks_revocation(call):
            try:
                revoked = await self._enforcer.akey_revoked(call.generation, call.key.key_id or "")
            except Exception as exc:
                self._unavailable(call, exc, "the revocation source")
            self._revocation_answered(call, revoked)
        if (owner := self._asks_owner(call)) is not None:
            try:
                owns = await self._enforcer.batch_owners.aowns(owner[0], owner[1])
            except Exception as exc:
                self._unavailable(call, exc, "the batch owners' storage")
            self._owner_answered(call, owns)
        self._conclude(call)
        call.reservation = await self._limiter.aacquire(call)
        note_reservation(call, request)
        self._admitted(call)
        try:
            response = await call_next(self._outgoing(request, call))
        except BaseException:
            await self._asettle(call, no_usage())
            raise
        if not isinstance(response, AsyncAPIResponse):
            return response
        http = response.http_response
        if not http.is_success:
            self._upstream_error(http.status_code, await http.aread() if http.status_code == 403 else b"")
            await self._asettle(call, no_usage())
            return response
        reads_usage = self._reads_usage(call)
        if call.plan.operation == "messages.create" and not reads_usage:
            return response  # streamed or not, nothing in the answer is wanted
        if _is_sse(http.headers):
            if reads_usage:
                http.stream = AsyncUsageStream(http.stream, lambda usage: self._asettle(call, usage))  # type: ignore[arg-type]
        elif call.plan.operation == "messages.create" and http.is_closed:
            await self._asettle(call, parsed_usage(await response.parse(), billed=is_priced(call)))
        elif call.plan.operation == "messages.batches.create" and (created := self._created_batch(await http.aread())):
            try:
                await self._enforcer.batch_owners.abind(*created)
            except Exception as exc:
                self._unbound(exc)
            await akeep_hold(self._enforcer, self._binding, call, created[0])
        elif call.plan.operation == "messages.batches.results" and call.plan.batch_id is not None:
            await awatch_results(self._enforcer, call.plan.batch_id, http)
        return response

    async def _asettle(self, call: Attempt, usage: Usage) -> None:
        self._record_usage(call, usage)
        await self._limiter.asettle(call.reservation, usage, settled_cost(self._enforcer, self._binding, call, usage))

    # -- deciding -----------------------------------------------------------------------------------

    def _judge(self, request: APIRequest) -> Attempt:
        """The policy's plan for this attempt, before the revocation and batch-owner questions."""
        enforcer = self._enforcer
        binding = self._binding
        generation = enforcer.generation
        role = generation.role_of(binding.principal)
        enforced = generation.enforced(role)
        key = generation.key_for(role)
        long_request = enforcer.long_request_check and isinstance(request.timeout, NotGiven)
        # Judge the path that will be sent: a relative URL goes under the workspace's base URL as it is
        # (so "//host/v1/messages" is the path "/host/v1/messages", not the host "host").
        url = request.url if "://" in request.url else f"/{request.url.lstrip('/')}"
        plan = plan_call(
            generation.policy,
            binding.principal,
            binding.scope,
            request.method,
            url,
            request.json,
            estimate=enforcer.token_estimator,
            count_tokens=role is not None and (role.counts_tokens or bool(binding.scope.spend)),
            enforce=enforced,
            nonstreaming_limit=NONSTREAMING_MAX_TOKENS if long_request else None,
            headers=request.headers,
            memo=generation.plan_memo,
        )
        plan = self._check_request(generation, plan, request, key)
        return Attempt(generation, plan, key, enforced, request.retries_taken == 0)

    def _check_request(self, generation: Generation, plan: CallPlan, request: APIRequest, key: ActiveKey) -> CallPlan:
        """Where the request goes and which tenant it names: only the workspace's host, only our tenant header."""
        url = request.url
        if "://" in url and not url.startswith(f"{self._base_url(key)}/"):
            return _refused(plan, "host_not_allowed")
        options = request.options
        if request.method.upper() != "GET" and (options.content is not None or options.files is not None):
            return _refused(
                plan, "invalid_request", "The Messages API takes a JSON body; raw content and files are refused."
            )
        org_ids = generation.allowed_org_ids
        asked = _header(request.headers, ORG_IDS_HEADER)
        if org_ids is not None and asked is not None and asked != org_ids:
            message = f"The {ORG_IDS_HEADER} header is set by the policy; a request may not change it."
            return _refused(plan, "tenant_restriction_violation", message)
        return plan

    def _asks_revocation(self, call: Attempt) -> bool:
        """Whether to ask if the key is revoked: for a call that may be sent (shadow mode sends denied ones)."""
        decision = call.plan.decision
        may_be_sent = decision.allowed or (not call.enforced and decision.reason not in REFUSED_IN_ANY_MODE)
        return call.key.key_id is not None and may_be_sent

    def _revocation_answered(self, call: Attempt, revoked: bool) -> None:
        if revoked:
            call.plan = _refused(call.plan, "key_revoked")

    def _asks_owner(self, call: Attempt) -> tuple[str, str] | None:
        """(batch id, principal id) when this call reads or cancels a batch and the role may do so only for its own."""
        plan = call.plan
        principal = self._binding.principal
        if plan.batch_id is None or plan.operation not in BATCH_READS or not plan.decision.allowed:
            return None
        role = call.generation.role_of(principal)
        if principal is None or role is None or role.batches == "all":
            return None
        return plan.batch_id, principal.id

    def _owner_answered(self, call: Attempt, owns: bool) -> None:
        if not owns:
            call.plan = _refused(call.plan, "batch_not_owned")

    def _unavailable(self, call: Attempt, exc: Exception, what: str) -> NoReturn:
        """A source that cannot answer (revocations, batch owners) fails closed, like a storage that cannot."""
        log.error("claude_rbac: %s failed (%s); denying", what, type(exc).__name__)
        decision = call.plan.decision.denied("backend_unavailable", UNAVAILABLE)
        call.plan = CallPlan(call.plan.operation, decision)
        if call.first:
            self._annotate(call)
        self._enforcer.auditor.record(decision, self._attributes(call), failure=exc)
        raise error_for("backend_unavailable") from None

    def _conclude(self, call: Attempt) -> None:
        """Record the decision and raise when it is a denial this mode enforces."""
        if call.first:
            self._annotate(call)
        decision = call.plan.decision
        if decision.allowed:
            return
        refused = call.enforced or decision.reason in REFUSED_IN_ANY_MODE
        if call.first or refused:  # a shadow-mode call the SDK retries is one decision, not one per attempt
            self._enforcer.auditor.record(decision, self._attributes(call))
        if refused:
            raise error_for(decision.reason, decision.message)

    def _annotate(self, call: Attempt) -> None:
        """Copy the decision onto the SDK's call span (the current span), when that span records."""
        call_span = trace.get_current_span()
        if not call_span.is_recording():
            return
        decision = call.plan.decision
        call_span.set_attributes(self._attributes(call))
        if decision.clamped and decision.max_tokens_effective is not None and call.enforced:
            call_span.set_attribute("gen_ai.request.max_tokens", decision.max_tokens_effective)

    def _admitted(self, call: Attempt) -> None:
        if call.first and call.plan.decision.allowed and not call.recorded:
            self._enforcer.auditor.record_lazily(call.plan.decision, call.enforced, lambda: self._attributes(call))

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

    def _created_batch(self, body: bytes) -> tuple[str, str] | None:
        """(batch id, creator) of the batch this call created, read from the answer's JSON."""
        principal = self._binding.principal
        if principal is None:
            return None
        try:
            batch_id = json.loads(body).get("id")
        except (ValueError, AttributeError):
            batch_id = None
        if not isinstance(batch_id, str) or batch_id_of(f"/v1/messages/batches/{batch_id}") != batch_id:
            log.error(
                "claude_rbac: a created batch's answer has no usable id; only roles with batches='all' can read it"
            )
            return None
        return batch_id, principal.id

    @staticmethod
    def _unbound(exc: Exception) -> None:
        # The batch exists and its creator has its id: answer them, and say loudly that it is unbound.
        log.error(
            "claude_rbac: could not record a new batch's creator (%s); reading it will be refused", type(exc).__name__
        )
        Auditor.annotate(trace.get_current_span(), {audit.STORAGE_ERROR: True})

    def _upstream_error(self, status: int, body: bytes) -> None:
        if status == 403 and b"tenant_restriction_violation" in body:
            Auditor.annotate(trace.get_current_span(), {audit.TENANT_VIOLATION: True})
            raise error_for("tenant_restriction_violation")

    def _record_usage(self, call: Attempt, usage: Usage) -> None:
        auditor = self._enforcer.auditor
        if (usage.counted or usage.cache_read_input_tokens) and auditor.points_recorded():
            decision = call.plan.decision
            auditor.record_tokens(decision.role, decision.model, usage.by_type())


def _refused(plan: CallPlan, reason: str, message: str | None = None) -> CallPlan:
    """The plan turned into a refusal for ``reason`` (nothing is counted for it)."""
    decision = plan.decision.denied(reason, message or error_for(reason).message)
    return CallPlan(plan.operation, decision, counts_rpm=False, batch_id=plan.batch_id)


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value if isinstance(value, str) else ""
    return None


def _is_sse(headers: Mapping[str, str]) -> bool:
    return headers.get("content-type", "").startswith("text/event-stream")
