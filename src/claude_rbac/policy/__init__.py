"""The policy: who may do what, as pure data and pure functions (it imports nothing of the runtime).

``Policy`` is immutable and validated once, when loaded; :meth:`Policy.decide` is the one decision
function that every adapter, the governed clients and ``claude-rbac explain`` ask.
"""

from ._model import (
    UNRESTRICTED,
    BatchAccess,
    Budget,
    Decision,
    Mode,
    OnExcess,
    Principal,
    Role,
    Scope,
    Settings,
    as_patterns,
)
from ._model_fields import ModelField, model_fields
from ._operations import BATCH_READS, batch_id_of, operation_of
from ._patterns import ModelMatcher
from ._policy import DEFAULT_POLICY, Policy, UnavailablePolicy
from ._request import NONSTREAMING_MAX_TOKENS, CallPlan, TokenEstimator, estimate_input_tokens, plan_call
from ._values import MAX_TOKENS_CEILING
from ._workspaces import (
    KEY_LITERAL,
    ORG_IDS_HEADER,
    KeySource,
    Workspace,
    fingerprint,
    format_org_ids,
    hide_keys,
    redact,
)

__all__ = [
    "BATCH_READS",
    "DEFAULT_POLICY",
    "KEY_LITERAL",
    "MAX_TOKENS_CEILING",
    "NONSTREAMING_MAX_TOKENS",
    "ORG_IDS_HEADER",
    "UNRESTRICTED",
    "BatchAccess",
    "Budget",
    "CallPlan",
    "Decision",
    "KeySource",
    "Mode",
    "ModelField",
    "ModelMatcher",
    "OnExcess",
    "Policy",
    "Principal",
    "Role",
    "Scope",
    "Settings",
    "TokenEstimator",
    "UnavailablePolicy",
    "Workspace",
    "as_patterns",
    "batch_id_of",
    "estimate_input_tokens",
    "fingerprint",
    "format_org_ids",
    "hide_keys",
    "model_fields",
    "operation_of",
    "plan_call",
    "redact",
]
