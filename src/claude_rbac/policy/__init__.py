"""The policy: who may do what, as pure data and pure functions (it imports nothing of the runtime).

``Policy`` is immutable and validated once, when loaded; :meth:`Policy.decide` is the one decision
function that every adapter, the governed clients and ``claude-rbac explain`` ask.
"""

from ._model import UNRESTRICTED, Budget, Decision, Mode, OnExcess, Principal, Role, Scope, Settings, as_patterns
from ._patterns import ModelMatcher
from ._policy import DEFAULT_POLICY, Policy, UnavailablePolicy
from ._request import NONSTREAMING_MAX_TOKENS, CallPlan, TokenEstimator, estimate_input_tokens, operation_of, plan_call
from ._values import MAX_TOKENS_CEILING
from ._workspaces import KEY_LITERAL, ORG_IDS_HEADER, KeySource, Workspace, fingerprint, format_org_ids, redact

__all__ = [
    "DEFAULT_POLICY",
    "KEY_LITERAL",
    "MAX_TOKENS_CEILING",
    "NONSTREAMING_MAX_TOKENS",
    "ORG_IDS_HEADER",
    "UNRESTRICTED",
    "Budget",
    "CallPlan",
    "Decision",
    "KeySource",
    "Mode",
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
    "estimate_input_tokens",
    "fingerprint",
    "format_org_ids",
    "operation_of",
    "plan_call",
    "redact",
]
