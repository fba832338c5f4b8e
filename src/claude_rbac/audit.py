"""The audit trail's vocabulary: the span, attribute, metric and event names claude_rbac writes.

Import them for queries and dashboards (``claude_rbac.audit.DECISION == "claude_rbac.decision"``);
``docs/audit.md`` explains each. The recorder itself is internal.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "API_KEY_ID",
    "BETAS",
    "COST",
    "COST_METRIC",
    "COST_RESERVED",
    "DECISION",
    "DECISIONS_METRIC",
    "DENIED_EVENT",
    "ENDUSER_ID",
    "ENDUSER_PSEUDO_ID",
    "ENFORCED",
    "INFERENCE_GEO",
    "MAX_TOKENS_EFFECTIVE",
    "MAX_TOKENS_REQUESTED",
    "MCP_SERVERS",
    "MODEL",
    "OPERATION",
    "POLICY_RELOADS_METRIC",
    "POLICY_REVISION",
    "POLICY_STALE",
    "REASON",
    "RELOAD_OUTCOME",
    "REQUIRED_ROLE",
    "ROLE",
    "ROUTE",
    "SERVICE_TIER",
    "SPAN_NAME",
    "SPEED",
    "STORAGE_ERROR",
    "TENANT_VIOLATION",
    "TOKENS_METRIC",
    "TOOLS",
    "UNKNOWN_FIELDS",
    "USER_ROLES",
    "WORKSPACE",
    "WORKSPACE_ID",
]

SPAN_NAME: Final = "claude_rbac.authorize"
DECISION: Final = "claude_rbac.decision"
REASON: Final = "claude_rbac.decision.reason"
ROLE: Final = "claude_rbac.role"
REQUIRED_ROLE: Final = "claude_rbac.required_role"
ENDUSER_ID: Final = "enduser.id"
ENDUSER_PSEUDO_ID: Final = "enduser.pseudo.id"
USER_ROLES: Final = "user.roles"
API_KEY_ID: Final = "claude_rbac.api_key.id"
WORKSPACE: Final = "claude_rbac.workspace"
MODEL: Final = "gen_ai.request.model"
MAX_TOKENS_REQUESTED: Final = "claude_rbac.max_tokens.requested"
MAX_TOKENS_EFFECTIVE: Final = "claude_rbac.max_tokens.effective"
ENFORCED: Final = "claude_rbac.enforced"
ROUTE: Final = "claude_rbac.route"
OPERATION: Final = "claude_rbac.operation"
STORAGE_ERROR: Final = "claude_rbac.storage_error"
TENANT_VIOLATION: Final = "claude_rbac.tenant_restriction_violation"
POLICY_REVISION: Final = "claude_rbac.policy.revision"
POLICY_STALE: Final = "claude_rbac.policy.stale"
RELOAD_OUTCOME: Final = "claude_rbac.policy.reload.outcome"
TOOLS: Final = "claude_rbac.tools"
MCP_SERVERS: Final = "claude_rbac.mcp_servers"
SERVICE_TIER: Final = "claude_rbac.service_tier"
SPEED: Final = "claude_rbac.speed"
INFERENCE_GEO: Final = "claude_rbac.inference_geo"
BETAS: Final = "claude_rbac.betas"
WORKSPACE_ID: Final = "claude_rbac.workspace_id"
UNKNOWN_FIELDS: Final = "claude_rbac.unknown_fields"

COST_RESERVED: Final = "claude_rbac.cost.reserved_usd"
"""The call span: the dollars reserved before the call (its worst case), for display (a float of a Decimal)."""
COST: Final = "claude_rbac.cost.usd"
"""The call span: the exact dollars the call cost, priced from its usage (a float of a Decimal)."""

DECISIONS_METRIC: Final = "claude_rbac.decisions"
COST_METRIC: Final = "claude_rbac.cost"
"""A counter in USD, by role, model and workspace (never a user id)."""
TOKENS_METRIC: Final = "claude_rbac.tokens"
DENIED_EVENT: Final = "claude_rbac.access.denied"
POLICY_RELOADS_METRIC: Final = "claude_rbac.policy.reloads"
