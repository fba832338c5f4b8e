"""The policy in force and what enforces it: one generation at a time, the quota, the keys and the auditor.

Every governed client's middleware and every route guard hold an :class:`Enforcer` and read
:attr:`Enforcer.generation` once per decision. A reload builds a whole new :class:`Generation` and swaps
it in with one attribute assignment, so a decision never mixes two policies, and every cache that
depends on the policy lives inside its generation: a request that read the old one can only fill the
old one's caches, which nothing reads any more.

A policy that fails to reload leaves the last good one in force, marked stale (``on_reload_error="keep"``,
the default), or one that denies everything (``"deny"``); see :mod:`._reload`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from ..errors import error_for
from ..policy import Decision, Mode, PlanMemo, Policy, Principal, Role, TokenEstimator, UnavailablePolicy, redact
from ..quota import Quota
from ._audit import Auditor
from ._batch_holds import BatchHolds
from ._batches import BatchOwners
from ._keys import ActiveKey, KeyRing, is_revoked
from ._memo import ThrashAwareMemo
from ._revocation import (
    DEFAULT_REVOCATION_TIMEOUT,
    DEFAULT_REVOCATION_TTL,
    RevocationList,
    RevocationSource,
    check_revocation_bounds,
)

__all__ = ["Enforcer", "Generation", "OnStorageError", "RevocationSource"]

log = logging.getLogger("claude_rbac")

OnStorageError = Literal["deny", "allow"]
_GUARD_MEMO_SIZE: Final = 4096


def _guard_memo() -> ThrashAwareMemo[tuple[Any, ...], GuardMemo]:
    return ThrashAwareMemo(_GUARD_MEMO_SIZE)


_SERVER_SPAN_ATTRIBUTES: Final = frozenset(
    {"enduser.id", "enduser.pseudo.id", "user.roles", "claude_rbac.decision", "claude_rbac.decision.reason"}
)

GuardMemo = tuple[Decision, dict[str, AttributeValue], dict[str, AttributeValue], bool]


@dataclass(frozen=True, eq=False, slots=True)
class Generation:
    """One policy in force, with everything derived from it. A reload installs a new one."""

    number: int
    policy: Policy
    mode: Mode
    """The mode in force: ``RBAC(mode=...)`` when given, else the policy's top-level ``mode``."""
    keys: KeyRing
    allowed_org_ids: str | None
    stale: bool = False
    """A newer policy failed to load: this one stays in force, and every decision says so."""
    guard_memo: ThrashAwareMemo[tuple[Any, ...], GuardMemo] = field(default_factory=_guard_memo)
    plan_memo: PlanMemo = field(default_factory=dict)
    """The plans of plain calls (see :func:`~claude_rbac.policy.plan_call`): this policy's only."""

    @property
    def revision(self) -> str:
        return self.policy.revision

    def role_of(self, principal: Principal | None) -> Role | None:
        return self.policy.role(principal.role) if principal is not None else None

    def enforced(self, role: Role | None) -> bool:
        """Whether denials are enforced for this role (a role's own ``mode`` wins over the policy's)."""
        mode = role.mode if role is not None and role.mode is not None else self.mode
        return mode == "enforce"

    def workspace_of(self, role: Role | None) -> str:
        if role is not None and role.workspace is not None:
            return role.workspace
        default = self.policy.settings.default_workspace
        return default if default is not None else next(iter(self.keys.workspaces))

    def key_for(self, role: Role | None) -> ActiveKey:
        """The current key of the role's workspace (key files are re-read when they change)."""
        return self.keys.get(self.workspace_of(role))


class Enforcer:
    """What the SDK middleware and the route guards act on; :class:`~claude_rbac.RBAC` builds one."""

    def __init__(
        self,
        policy: Policy,
        *,
        quota: Quota,
        auditor: Auditor,
        mode: Mode | None = None,
        on_storage_error: OnStorageError = "deny",
        revoked: RevocationSource | None = None,
        revoked_timeout: float = DEFAULT_REVOCATION_TIMEOUT,
        revoked_ttl: float = DEFAULT_REVOCATION_TTL,
        token_estimator: TokenEstimator | None = None,
        allowed_org_ids: str | None = None,
        service: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        long_request_check: bool = True,
    ) -> None:
        if on_storage_error not in ("deny", "allow"):
            raise ValueError(f"on_storage_error must be 'deny' or 'allow', got {redact(on_storage_error)}")
        if mode not in (None, "enforce", "shadow"):
            raise ValueError(f"mode must be 'enforce' or 'shadow', got {redact(mode)}")
        check_revocation_bounds(revoked_timeout, revoked_ttl)
        self.quota = quota
        self.auditor = auditor
        self.on_storage_error: OnStorageError = on_storage_error
        self.token_estimator = token_estimator
        self.long_request_check = long_request_check
        """Apply the SDK's non-streaming max_tokens rule after the clamp (off when the app set its own timeout)."""
        self._mode_override = mode
        self._org_ids_override = allowed_org_ids
        self._revoked = None if revoked is None else RevocationList(revoked, timeout=revoked_timeout, ttl=revoked_ttl)
        self.batch_owners = BatchOwners(quota.storage, key_prefix=quota.key_prefix, in_process=quota.is_memory)
        self.batch_holds = BatchHolds(quota.storage, key_prefix=quota.key_prefix, in_process=quota.is_memory)
        self._key_options: dict[str, Any] = {"service": service, "api_key": api_key, "base_url": base_url}
        self._lock = threading.Lock()
        self._generation = self._build(policy, number=1, previous=None)
        self._poll: Callable[[], None] | None = None
        auditor.use_policy(policy)

    # -- the generation in force ---------------------------------------------------------------------

    @property
    def generation(self) -> Generation:
        """The generation in force (one attribute read: atomic), after checking the watched policy file."""
        poll = self._poll
        if poll is not None:
            poll()
        return self._generation

    @property
    def installed(self) -> Generation:
        """The generation in force, without checking the policy file (what a reload works from)."""
        return self._generation

    @property
    def policy(self) -> Policy:
        return self.generation.policy

    def watch(self, poll: Callable[[], None] | None) -> None:
        """Call ``poll`` before each decision reads the generation (a file watcher that checks once a second)."""
        self._poll = poll

    def install(self, policy: Policy, *, stale: bool = False) -> Generation:
        """Put ``policy`` in force for every decision from now on. Raises if its keys cannot be read."""
        with self._lock:
            current = self._generation
            fresh = self._build(policy, number=current.number + 1, previous=current, stale=stale)
            self.auditor.use_policy(policy)
            self._generation = fresh
        return fresh

    def keep_stale(self) -> Generation:
        """Keep the policy in force after a newer one failed to load, its decisions marked stale."""
        with self._lock:
            current = self._generation
            if not current.stale:
                number, memo = current.number + 1, _guard_memo()
                self._generation = replace(current, number=number, stale=True, guard_memo=memo, plan_memo={})
            return self._generation

    def fail_closed(self) -> Generation:
        """Deny every decision with ``backend_unavailable`` until a good policy is installed."""
        current = self._generation
        unavailable = UnavailablePolicy(
            current.policy.roles,
            on_excess=current.policy.on_excess,
            source=current.policy.source,
            settings=current.policy.settings,
            revision=current.policy.revision,
        )
        return self.install(unavailable, stale=True)

    def _build(self, policy: Policy, *, number: int, previous: Generation | None, stale: bool = False) -> Generation:
        workspaces = policy.settings.workspaces
        if previous is not None and previous.policy.settings.workspaces == workspaces:
            keys = previous.keys  # same workspaces: keep the ring (and its rotation state)
        else:
            keys = KeyRing(workspaces, **self._key_options)
        return Generation(
            number=number,
            policy=policy,
            mode=self._mode_override or policy.settings.mode,
            keys=keys,
            allowed_org_ids=self._org_ids_override or policy.settings.allowed_org_ids,
            stale=stale,
        )

    # -- keys -----------------------------------------------------------------------------------------

    def key_revoked(self, generation: Generation, key_id: str) -> bool:
        """Whether the key is revoked by the policy or by the ``revoked=`` source.

        The source is asked within its time bound; when it times out, raises or answers junk, this raises
        and the caller fails closed.
        """
        if is_revoked(key_id, generation.policy.settings.revoked):
            return True
        return self._revoked is not None and self._revoked.revoked(key_id)

    async def akey_revoked(self, generation: Generation, key_id: str) -> bool:
        """:meth:`key_revoked` for async clients: the source runs off the event loop."""
        if is_revoked(key_id, generation.policy.settings.revoked):
            return True
        return self._revoked is not None and await self._revoked.arevoked(key_id)

    def reload_keys(self) -> list[str]:
        """Re-read every key source now; the workspaces whose key changed."""
        return self._generation.keys.reload()

    # -- the route guard --------------------------------------------------------------------------------

    def authorize(self, principal: Principal | None, role: str, *, route: str | None = None) -> Decision:
        """The route guard: record the decision, and raise ``NotAuthenticated``/``AccessDenied`` on a denial.

        In shadow mode a denial is recorded (``claude_rbac.enforced=false``) and returned, not raised.
        The decision and its attributes are memoised per (principal, role, route) in the generation: a
        guarded request then costs a dict lookup plus the span and the metric point.
        """
        generation = self.generation
        memo_key = (principal, role, route, generation.keys.generation)
        memo = generation.guard_memo.get(memo_key)
        if memo is None:
            memo = self._guard_decision(generation, principal, role, route)
            generation.guard_memo.put(memo_key, memo)
        decision, attributes, server_attributes, enforced = memo
        self.auditor.record(decision, attributes)
        server_span = trace.get_current_span()
        if server_span.is_recording():
            server_span.set_attributes(server_attributes)
        if not decision.allowed and enforced:
            raise error_for(decision.reason, decision.message)
        return decision

    def _guard_decision(
        self, generation: Generation, principal: Principal | None, required: str, route: str | None
    ) -> GuardMemo:
        decision = generation.policy.authorize_role(principal, required)
        role = generation.role_of(principal)
        enforced = generation.enforced(role)
        key = generation.key_for(role)
        attributes = self.auditor.attributes(
            decision,
            principal,
            required_role=required,
            route=route,
            enforced=enforced,
            key_id=key.key_id,
            workspace=key.workspace,
            revision=generation.revision,
            stale=generation.stale,
        )
        server_attributes = {name: value for name, value in attributes.items() if name in _SERVER_SPAN_ATTRIBUTES}
        return decision, attributes, server_attributes, enforced
