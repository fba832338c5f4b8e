"""The audit trail: span, metric and log names in one place, and the one recorder that writes them.

Only the OpenTelemetry *API* is used; which SDK and exporter run is the app's choice. Nothing here ever
records a prompt, a completion or an API key: callers hand over a :class:`~claude_rbac.policy.Decision`,
a principal and a key fingerprint, and that is all there is to record.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import typing
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, Literal

from opentelemetry import _logs, metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from .._version import __version__
from ..audit import (
    API_KEY_ID,
    BETAS,
    COST_METRIC,
    DECISION,
    DECISIONS_METRIC,
    DENIED_EVENT,
    ENDUSER_ID,
    ENDUSER_PSEUDO_ID,
    ENFORCED,
    INFERENCE_GEO,
    MAX_TOKENS_EFFECTIVE,
    MAX_TOKENS_REQUESTED,
    MCP_SERVERS,
    MODEL,
    OPERATION,
    POLICY_RELOADS_METRIC,
    POLICY_REVISION,
    POLICY_STALE,
    REASON,
    RELOAD_OUTCOME,
    REQUIRED_ROLE,
    ROLE,
    ROUTE,
    SERVICE_TIER,
    SPAN_NAME,
    SPEED,
    TOKENS_METRIC,
    TOOLS,
    UNKNOWN_FIELDS,
    USER_ROLES,
    WORKSPACE,
    WORKSPACE_ID,
)
from ..policy import Decision, Policy, Principal, hide_keys, redact
from ..policy.prices import Cost
from ._labels import OTHER, MetricLabels
from ._recording import PointsProbe, SpansProbe

__all__ = ["Auditor", "UserIdMode"]

UserIdMode = Literal["plain", "hashed", "off"]

logger = logging.getLogger("claude_rbac")
_MAX_WARNED_ROLES: Final = 1000
_FIELD_ATTRIBUTES: Final = {
    "tools": TOOLS,
    "mcp_servers": MCP_SERVERS,
    "betas": BETAS,
    "unknown_fields": UNKNOWN_FIELDS,
    "service_tier": SERVICE_TIER,
    "speed": SPEED,
    "inference_geo": INFERENCE_GEO,
    "workspace_id": WORKSPACE_ID,
}
"""The span attribute of each request field a decision carries: a string array, or (one value) a string."""
_ONE_VALUE: Final = frozenset({"service_tier", "speed", "inference_geo", "workspace_id"})


class Auditor:
    """Writes one ``claude_rbac.authorize`` span, one metric point and (for a denial) one log record per decision.

    The span and the point are written only when someone records them (see :mod:`._recording`): with no
    OpenTelemetry SDK set up, an allowed decision costs two probes, and no attribute is built for it.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        user_id: UserIdMode = "plain",
        user_id_key: bytes | str | None = None,
        events: bool = False,
        logger_provider: _logs.LoggerProvider | None = None,
    ) -> None:
        if user_id not in ("plain", "hashed", "off"):
            raise ValueError(f"audit_user_id must be 'plain', 'hashed' or 'off', got {redact(user_id)}")
        if user_id == "hashed" and not user_id_key:
            raise ValueError("audit_user_id='hashed' needs audit_user_id_key: the HMAC key, the same on every worker")
        self.tracer = trace.get_tracer("claude_rbac", __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter("claude_rbac", __version__, meter_provider=meter_provider)
        self.decisions = meter.create_counter(
            DECISIONS_METRIC,
            unit="{decision}",
            description="Access decisions by outcome, reason, role and model.",
        )
        self.tokens = meter.create_counter(
            TOKENS_METRIC, unit="{token}", description="Tokens used, by role, model and token type."
        )
        self.cost = meter.create_counter(
            COST_METRIC,
            unit="USD",
            description="Dollars spent (priced exactly from usage), by role, model and workspace.",
        )
        self.reloads = meter.create_counter(
            POLICY_RELOADS_METRIC, unit="{reload}", description="Policy reloads, by outcome: ok or refused."
        )
        self.spans_recorded = SpansProbe(self.tracer)
        """Whether decision spans go anywhere (False while no SDK tracer provider is set)."""
        self.points_recorded = PointsProbe(self.decisions)
        """Whether metric points go anywhere (False while no SDK meter provider is set). One meter made every
        counter here, and a provider set later reaches all of them at once: one probe answers for each."""
        self.user_id_mode = user_id
        self._events = (
            _logs.get_logger("claude_rbac", __version__, logger_provider=logger_provider)
            if events or logger_provider is not None
            else None
        )
        self._user_key = user_id_key.encode() if isinstance(user_id_key, str) else user_id_key
        self._unknown_roles: set[str | None] = set()
        self._unknown_fields: set[str] = set()
        self.labels = MetricLabels()

    def use_policy(self, policy: Policy) -> None:
        """Label metrics with this policy's roles and patterns from now on (the enforcer calls it on each reload)."""
        self.labels = MetricLabels(policy)

    # -- attributes --------------------------------------------------------------------------------

    def recorded_id(self, principal_id: str) -> str:
        """The user id as this audit trail keeps it: as given (``plain``), its keyed pseudonym (``hashed``, the
        ``enduser.pseudo.id`` of the spans), or ``""`` (``off``). The spend ledger stores the same."""
        if self.user_id_mode == "plain":
            return principal_id
        if self.user_id_mode == "off":
            return ""
        assert self._user_key is not None
        return hmac.new(self._user_key, principal_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def user_attributes(self, principal: Principal | None) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {}
        if principal is None:
            return attributes
        if self.user_id_mode == "plain":
            attributes[ENDUSER_ID] = principal.id
        elif self.user_id_mode == "hashed":
            attributes[ENDUSER_PSEUDO_ID] = self.recorded_id(principal.id)
        if isinstance(principal.role, str):
            attributes[USER_ROLES] = [principal.role]
        return attributes

    def attributes(
        self,
        decision: Decision,
        principal: Principal | None,
        *,
        required_role: str | None = None,
        key_id: str | None = None,
        workspace: str | None = None,
        route: str | None = None,
        enforced: bool = True,
        operation: str | None = None,
        revision: str | None = None,
        stale: bool = False,
    ) -> dict[str, AttributeValue]:
        attributes = self.user_attributes(principal)
        attributes[DECISION] = "allow" if decision.allowed else "deny"
        attributes[REASON] = decision.reason
        attributes[ENFORCED] = enforced
        optional: Mapping[str, AttributeValue | None] = {
            ROLE: decision.role,
            REQUIRED_ROLE: required_role,
            API_KEY_ID: key_id,
            WORKSPACE: workspace,
            MODEL: hide_keys(decision.model) if decision.model is not None else None,
            MAX_TOKENS_REQUESTED: decision.max_tokens_requested,
            MAX_TOKENS_EFFECTIVE: decision.max_tokens_effective,
            ROUTE: route,
            OPERATION: operation,
            POLICY_REVISION: revision,
            POLICY_STALE: True if stale else None,
        }
        for name, value in optional.items():
            if value is not None:
                attributes[name] = value
        for field, values in decision.fields:
            shown = [hide_keys(value) for value in values]
            attributes[_FIELD_ATTRIBUTES.get(field, f"claude_rbac.{field}")] = (
                shown[0] if field in _ONE_VALUE and len(shown) == 1 else shown
            )
        return attributes

    # -- recording ---------------------------------------------------------------------------------

    def record_lazily(
        self, decision: Decision, enforced: bool, attributes: Callable[[], dict[str, AttributeValue]]
    ) -> None:
        """:meth:`record`, calling ``attributes()`` only when something reads them: a recorded span, a denial
        (logged, whoever records spans), a decision with request fields (an unknown one is warned about)."""
        if decision.allowed and not decision.fields and not self.spans_recorded():
            if self.points_recorded():
                self._count(decision, enforced)
            return
        self.record(decision, attributes())

    def record(
        self,
        decision: Decision,
        attributes: dict[str, AttributeValue],
        *,
        failure: BaseException | None = None,
    ) -> None:
        """Write the decision span (status UNSET for allow and deny alike; ERROR only if something broke)."""
        if self.spans_recorded():
            span = self.tracer.start_span(SPAN_NAME, kind=SpanKind.INTERNAL, attributes=attributes)
            if failure is not None:
                span.set_status(Status(StatusCode.ERROR, type(failure).__name__))
            span.end()
        if decision.reason == "unknown_role":
            self._warn_unknown_role(decision.role)
        if decision.fields:
            self._warn_unknown_fields(dict(decision.fields).get("unknown_fields", ()))
        if self.points_recorded():
            self._count(decision, bool(attributes.get(ENFORCED, True)))
        if not decision.allowed:
            self._log_denial(decision, attributes)
            if self._events is not None:
                # Span events are being deprecated in favour of log events: one per denial, opt-in.
                self._events.emit(
                    event_name=DENIED_EVENT,
                    severity_number=_logs.SeverityNumber.INFO,
                    body=decision.message,
                    attributes=attributes,
                )

    def _count(self, decision: Decision, enforced: bool) -> None:
        labels = self.labels
        unvetted = decision.reason in _UNVETTED_MODEL
        model = (OTHER if decision.model else "") if unvetted else labels.model(decision.model)
        self.decisions.add(
            1, _metric_attributes(decision.allowed, decision.reason, labels.role(decision.role), model, enforced)
        )

    def _warn_unknown_role(self, role: str | None) -> None:
        """One WARNING per role name the policy lacks: a principal loader mapping users to a misspelt role
        is a bug to see, not a quiet 403."""
        if role in self._unknown_roles or len(self._unknown_roles) >= _MAX_WARNED_ROLES:
            return
        self._unknown_roles.add(role)
        logger.warning(
            "claude_rbac: a principal has role %r, which the policy does not define; every call it makes is denied"
            " (unknown_role). Check the principal loader's role mapping.",
            role,
        )

    def _warn_unknown_fields(self, names: typing.Iterable[str]) -> None:
        """One WARNING per request field name the governor does not know: an SDK upgrade (or a caller) sending a
        field whose cost, reach or residency nobody decided. ``strict = true`` refuses such requests."""
        for name in names:
            if name in self._unknown_fields or len(self._unknown_fields) >= _MAX_WARNED_ROLES:
                continue
            self._unknown_fields.add(name)
            logger.warning(
                "claude_rbac: a request sent the field %r, which claude_rbac does not govern; it is recorded"
                " (claude_rbac.unknown_fields) and let through unless the policy is strict",
                hide_keys(name),
            )

    def _log_denial(self, decision: Decision, attributes: Mapping[str, AttributeValue]) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "reason": decision.reason,
            "role": decision.role,
            "model": attributes.get(MODEL),
            "route": attributes.get(ROUTE),
            "enforced": attributes.get(ENFORCED),
            "revision": attributes.get(POLICY_REVISION),
        }
        for name in (ENDUSER_ID, ENDUSER_PSEUDO_ID):
            if name in attributes:
                fields["user"] = attributes[name]
        logger.info(
            "claude_rbac denied: reason=%s role=%s model=%s route=%s",
            decision.reason,
            decision.role,
            fields["model"],
            fields["route"],
            extra={"claude_rbac": fields},
        )

    def record_tokens(self, role: str | None, model: str | None, usage: Mapping[str, int]) -> None:
        if not self.points_recorded():
            return
        for kind, count in usage.items():
            if count:
                self.tokens.add(
                    count,
                    {
                        "claude_rbac.role": self.labels.role(role),
                        "gen_ai.request.model": self.labels.model(model),
                        "gen_ai.token.type": kind,
                    },
                )

    def record_cost(self, role: str | None, model: str | None, workspace: str | None, cost: Cost) -> None:
        """One point on the cost counter: a float of the exact ``Decimal`` (the ledger keeps the exact sum)."""
        if not self.points_recorded():
            return
        self.cost.add(
            float(cost.dollars),
            {
                ROLE: self.labels.role(role),
                MODEL: self.labels.model(model),
                WORKSPACE: workspace or "",
            },
        )

    def record_reload(self, outcome: Literal["ok", "refused"]) -> None:
        """One point on the reloads counter. The revision is not an attribute: it is unbounded over a process's
        life, and each new one would start a new series that a cumulative exporter keeps for ever."""
        self.reloads.add(1, {RELOAD_OUTCOME: outcome})

    @staticmethod
    def annotate(span: Span, attributes: Mapping[str, AttributeValue]) -> None:
        """Copy the decision's attributes onto another span (the SDK's call span, the server span)."""
        if span.is_recording():
            span.set_attributes(attributes)


_UNVETTED_MODEL: Final = frozenset(
    {"model_not_allowed", "api_access_not_allowed", "unauthenticated", "invalid_request", "unknown_role"}
)
"""Denials decided before the model was found in the policy: its name is whatever the caller sent."""


@functools.lru_cache(maxsize=1024)
def _metric_attributes(
    allowed: bool, reason: str, role: str, model: str, enforced: bool
) -> Mapping[str, AttributeValue]:
    # Low cardinality only: never a user id, never a model name the policy refused (a caller could make up
    # millions), only labels from bounded sets (:class:`MetricLabels`); the span has the exact name.
    return MappingProxyType(
        {DECISION: "allow" if allowed else "deny", REASON: reason, ROLE: role, MODEL: model, ENFORCED: enforced}
    )
