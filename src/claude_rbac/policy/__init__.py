"""The policy: who may do what, as pure data and pure functions (it imports nothing of the runtime).

``Policy`` is immutable and validated once, when loaded; :meth:`Policy.decide` is the one decision
function that every adapter, the governed clients and ``claude-rbac explain`` ask.
"""

from ._diff import Change, PolicyDiff, RoleDiff, diff_policies, gain_hits, globs_overlap, limit_settings
from ._fields import BETA_HEADER, GOVERNED_FIELDS, HARMLESS_FIELDS, KNOWN_FIELDS, WORKSPACE_HEADER
from ._grants import DEFAULT_GRANTS, GRANT_KEYS, TOOL_FAMILIES, tool_family
from ._model import (
    BatchAccess,
    Budget,
    Decision,
    FieldValues,
    Mode,
    OnExcess,
    Principal,
    Role,
    Settings,
    as_patterns,
)
from ._model_fields import ModelField, model_fields
from ._operations import BATCH_READS, batch_id_of, operation_of
from ._patterns import ModelMatcher, sdk_models
from ._policy import DEFAULT_POLICY, Policy, UnavailablePolicy
from ._probe import OPERATION_ENDPOINTS, probe
from ._request import (
    NONSTREAMING_MAX_TOKENS,
    CallPlan,
    PlanMemo,
    TokenEstimator,
    estimate_input_tokens,
    plan_call,
)
from ._reserve import cache_ttl
from ._scope import UNRESTRICTED, Narrowing, Scope, ScopeCache
from ._spend import MICRO, Spend, SpendPeriod, dollars_of, micro_dollars
from ._suite import Case, Expectation, Outcome, Suite, SuiteError, read_suite, run_case, suite_policy_path
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
    "MICRO",
    "cache_ttl",
    "Spend",
    "SpendPeriod",
    "dollars_of",
    "micro_dollars",
    "BATCH_READS",
    "BETA_HEADER",
    "DEFAULT_GRANTS",
    "DEFAULT_POLICY",
    "GOVERNED_FIELDS",
    "GRANT_KEYS",
    "HARMLESS_FIELDS",
    "KEY_LITERAL",
    "KNOWN_FIELDS",
    "MAX_TOKENS_CEILING",
    "NONSTREAMING_MAX_TOKENS",
    "OPERATION_ENDPOINTS",
    "ORG_IDS_HEADER",
    "TOOL_FAMILIES",
    "UNRESTRICTED",
    "WORKSPACE_HEADER",
    "BatchAccess",
    "Budget",
    "CallPlan",
    "Case",
    "Change",
    "Decision",
    "Expectation",
    "FieldValues",
    "KeySource",
    "Mode",
    "ModelField",
    "ModelMatcher",
    "OnExcess",
    "Outcome",
    "PlanMemo",
    "Policy",
    "PolicyDiff",
    "Principal",
    "Role",
    "RoleDiff",
    "Narrowing",
    "Scope",
    "ScopeCache",
    "Settings",
    "Suite",
    "SuiteError",
    "TokenEstimator",
    "UnavailablePolicy",
    "Workspace",
    "as_patterns",
    "batch_id_of",
    "diff_policies",
    "estimate_input_tokens",
    "fingerprint",
    "format_org_ids",
    "gain_hits",
    "globs_overlap",
    "hide_keys",
    "limit_settings",
    "model_fields",
    "operation_of",
    "plan_call",
    "probe",
    "sdk_models",
    "read_suite",
    "redact",
    "run_case",
    "suite_policy_path",
    "tool_family",
]
