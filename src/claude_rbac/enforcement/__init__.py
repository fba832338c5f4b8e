"""The runtime: the policy in force, the SDK middleware that enforces it, keys, audit and usage.

:class:`Enforcer` holds one policy generation (swapped atomically on reload), the quota, the keys and the
auditor; the :class:`Governor` (an anthropic SDK middleware) and the route guards take it in their
constructors.
"""

from ._attempt import Binding
from ._audit import Auditor, UserIdMode
from ._batches import BatchOwners
from ._clients import ClientFactory, GovernedAnthropic, GovernedAsyncAnthropic
from ._enforcer import Enforcer, Generation, OnStorageError
from ._governor import Governor
from ._keys import ActiveKey, KeyRing, is_revoked
from ._limits import request_buckets, spend_buckets
from ._reload import OnReloadError, PolicyReloader, PolicySource, ReloadMode, load_policy, policy_file
from ._revocation import RevocationList, RevocationSource

__all__ = [
    "ActiveKey",
    "Auditor",
    "BatchOwners",
    "Binding",
    "ClientFactory",
    "Enforcer",
    "Generation",
    "GovernedAnthropic",
    "GovernedAsyncAnthropic",
    "Governor",
    "KeyRing",
    "OnReloadError",
    "OnStorageError",
    "PolicyReloader",
    "PolicySource",
    "ReloadMode",
    "RevocationList",
    "RevocationSource",
    "UserIdMode",
    "is_revoked",
    "load_policy",
    "policy_file",
    "request_buckets",
    "spend_buckets",
]
