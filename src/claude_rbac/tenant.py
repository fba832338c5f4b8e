"""Tenant restriction (``anthropic-allowed-org-ids``) for proxies and gateways that sit in front of Claude.

An egress proxy that enforces the organisation restriction itself can answer exactly as Anthropic
does: ``tenant_violation(header_value, org_id)`` returns ``None`` to allow, or the error body to
send with a 403::

    {"type":"error","error":{"type":"permission_error",
     "message":"Access restricted by network policy. Contact IT Administrator.",
     "error_code":"tenant_restriction_violation"}}

claude_rbac's own clients send the header (``allowed_org_ids`` in the policy or ``RBAC(...)``) and turn
Anthropic's 403 into :class:`~claude_rbac.errors.AccessDenied` with reason ``tenant_restriction_violation``.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from .policy import ORG_IDS_HEADER, format_org_ids

__all__ = ["HEADER", "STATUS", "TENANT_ERROR", "format_org_ids", "tenant_violation"]

HEADER: Final = ORG_IDS_HEADER
STATUS: Final = 403
TENANT_ERROR: Final[dict[str, Any]] = {
    "type": "error",
    "error": {
        "type": "permission_error",
        "message": "Access restricted by network policy. Contact IT Administrator.",
        "error_code": "tenant_restriction_violation",
    },
}


def _canonical(value: str) -> str | None:
    try:
        parsed = uuid.UUID(value.strip())
    except ValueError:
        return None
    return str(parsed) if str(parsed) == value.strip().lower() else None


def tenant_violation(header_value: str | None, org_id: str) -> dict[str, Any] | None:
    """``None`` when a request with this ``anthropic-allowed-org-ids`` value may go to ``org_id``.

    No header means no restriction was asked for. A header that names other organisations, or that
    is malformed, is a violation: the error body to answer with (status :data:`STATUS`).
    """
    if header_value is None:
        return None
    target = _canonical(org_id)
    allowed = [_canonical(part) for part in header_value.split(",")]
    if target is None or not allowed or None in allowed or target not in allowed:
        return {"type": "error", "error": dict(TENANT_ERROR["error"])}
    return None
