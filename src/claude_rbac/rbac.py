"""``RBAC``: the public facade. It builds the parts (policy, quota, keys, auditor, enforcer) and hands out
governed clients; the parts do the work (see ``docs/architecture.md``)."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import anthropic
from opentelemetry import metrics, trace
from typing_extensions import Unpack

from .enforcement import (
    Auditor,
    ClientFactory,
    Enforcer,
    KeyRing,
    OnReloadError,
    OnStorageError,
    PolicyReloader,
    PolicySource,
    ReloadMode,
    RevocationSource,
    UserIdMode,
    load_policy,
    request_buckets,
    spend_buckets,
)
from .errors import PolicyError, PolicyProblem
from .policy import (
    UNRESTRICTED,
    Decision,
    Mode,
    Narrowing,
    Policy,
    Principal,
    Scope,
    ScopeCache,
    TokenEstimator,
    format_org_ids,
)
from .quota import (
    DAY_TTL,
    Bucket,
    Quota,
    SpendLedger,
    SpendRecorder,
    SpendWindow,
    spend_windows,
    warn_if_memory_in_many_workers,
)

__all__ = ["RBAC"]

log = logging.getLogger("claude_rbac")


class RBAC:
    """Role-based access control for Claude.

    >>> rbac = RBAC(Policy.default(), storage="memory://", api_key="sk-...")
    >>> claude = rbac.client(Principal(id="alice", role="user"))   # a genuine anthropic.Anthropic
    """

    def __init__(
        self,
        policy: PolicySource,
        *,
        storage: str = "memory://",
        storage_options: dict[str, Any] | None = None,
        async_storage: str | None = None,
        key_prefix: str = "claude_rbac",
        api_key: str | None = None,
        base_url: str | None = None,
        service: str | None = None,
        allowed_org_ids: Iterable[str] | None = None,
        revoked: RevocationSource | None = None,
        revoked_timeout: float = 1.0,
        revoked_ttl: float = 1.0,
        mode: Mode | None = None,
        on_storage_error: OnStorageError = "deny",
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        audit_user_id: UserIdMode = "plain",
        audit_user_id_key: bytes | str | None = None,
        audit_events: bool = False,
        logger_provider: Any = None,
        token_estimator: TokenEstimator | None = None,
        client_options: Mapping[str, Any] | None = None,
        warn_multiprocess: bool = True,
        reload: ReloadMode = "manual",
        on_reload_error: OnReloadError = "keep",
        spend_ledger: bool = True,
        spend_ledger_days: int = DAY_TTL,
        spend_recorder: SpendRecorder | None = None,
    ) -> None:
        """Each settled call's exact cost goes, off the request path, to a daily spend ledger: by default
        :attr:`spend_ledger`, a :class:`~claude_rbac.quota.SpendLedger` on ``storage`` keeping each UTC day
        ``spend_ledger_days`` days (``docs/spend-ledger.md``); ``spend_recorder``: a
        :class:`~claude_rbac.quota.SpendRecorder` of the app's own instead; ``spend_ledger=False``: none."""
        loaded = load_policy(policy)
        try:
            org_ids = format_org_ids(allowed_org_ids) if allowed_org_ids is not None else None
        except ValueError as exc:
            raise PolicyError([PolicyProblem(str(exc), "RBAC(allowed_org_ids=...)")]) from None
        self.auditor = Auditor(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            user_id=audit_user_id,
            user_id_key=audit_user_id_key,
            events=audit_events,
            logger_provider=logger_provider,
        )
        self.spend_ledger: SpendLedger | None = None
        """The daily spend ledger (``docs/spend-ledger.md``): each priced call's exact cost per principal and role
        per UTC day, on the RBAC's storage, ids as the audit trail keeps them (``audit_user_id``). ``None`` with
        ``spend_ledger=False`` or a ``spend_recorder`` of the app's own."""
        if spend_recorder is None and spend_ledger:
            given = dict(storage_options or {})
            clock = given.pop("clock", None)
            self.spend_ledger = SpendLedger(
                storage,
                key_prefix=key_prefix,
                storage_options=given,
                ttl_days=spend_ledger_days,
                principal_id=self.auditor.recorded_id,
                clock=clock,
            )
        self.quota = Quota(
            storage,
            key_prefix=key_prefix,
            storage_options=storage_options,
            async_storage=async_storage,
            spend_recorder=spend_recorder or self.spend_ledger,
        )
        if warn_multiprocess:
            warn_if_memory_in_many_workers(storage)
        options = dict(client_options or {})
        self.enforcer = Enforcer(
            loaded,
            quota=self.quota,
            auditor=self.auditor,
            mode=mode,
            on_storage_error=on_storage_error,
            revoked=revoked,
            revoked_timeout=revoked_timeout,
            revoked_ttl=revoked_ttl,
            token_estimator=token_estimator,
            allowed_org_ids=org_ids,
            service=service,
            api_key=api_key,
            base_url=base_url,
            long_request_check="timeout" not in options,
        )
        self._clients = ClientFactory(
            self.enforcer, base_url=base_url, client_options=options, tracer_provider=tracer_provider
        )
        self._scopes = ScopeCache()
        self._reloader = PolicyReloader(self.enforcer, self.auditor, policy, on_error=on_reload_error, mode=reload)

    def __repr__(self) -> str:
        return f"<RBAC policy={self.policy!r} storage={self.quota.uri.split('://')[0]}:// mode={self.mode}>"

    @property
    def policy(self) -> Policy:
        """The policy in force."""
        return self.enforcer.policy

    @property
    def policy_stale(self) -> bool:
        """Whether the policy in force is stale: a newer one failed to load (see ``on_reload_error``)."""
        return self.enforcer.generation.stale

    @property
    def mode(self) -> Mode:
        """The mode in force: ``RBAC(mode=...)`` when given, else the policy's."""
        return self.enforcer.generation.mode

    @property
    def keys(self) -> KeyRing:
        """The keys of the policy in force (fingerprints only in any repr)."""
        return self.enforcer.generation.keys

    # -- questions, no side effects ---------------------------------------------------------------

    def check(
        self,
        principal: Principal | None,
        *,
        model: object = None,
        max_tokens: object = None,
        scope: Scope | None = None,
    ) -> Decision:
        """What the policy says about one call, without counting it, recording it or sending it.

        Bad values (a float or string max_tokens, a model that is not a string) raise
        :class:`~claude_rbac.errors.InvalidRequest`: call it on user input before the SDK sees it.
        """
        asked: dict[str, object] = {}
        if model is not None:
            asked["model"] = model
        if max_tokens is not None:
            asked["max_tokens"] = max_tokens
        return self.policy.decide(principal, scope=scope or UNRESTRICTED, **asked)

    def has_role(self, principal: Principal | None, role: str) -> bool:
        return self.policy.has_role(principal, role)

    def validate_role(self, role: str) -> None:
        """Raise :class:`PolicyError` when ``role`` is not in the policy (route guards call this at startup)."""
        if role not in self.policy.roles:
            raise PolicyError(
                [PolicyProblem(f"requires_role({role!r}) names a role the policy does not have", self.policy.source)]
            )

    # -- route guard -------------------------------------------------------------------------------

    def require(self, principal: Principal | None, role: str, *, route: str | None = None) -> Decision:
        """The route guard: record the decision, and raise ``NotAuthenticated``/``AccessDenied`` on a denial.

        In shadow mode a denial is recorded (``claude_rbac.enforced=false``) and returned, not raised.
        """
        return self.enforcer.authorize(principal, role, route=route)

    # -- governed clients --------------------------------------------------------------------------

    def scope(self, **narrowing: Unpack[Narrowing]) -> Scope:
        """A validated, cached route scope. Raises :class:`PolicyError` for a bad one (at decoration time).

        The keywords are :class:`~claude_rbac.policy.Narrowing`'s: ``models``, ``max_tokens``, ``rpm``, ``name``
        and the request-field grants (``tools``, ``mcp_servers``, ``service_tiers``, ``speeds``,
        ``inference_geos``, ``betas``); a value must match the role's grant and the route's."""
        return self._scopes.get(narrowing)

    def client(
        self,
        principal: Principal | None,
        *,
        scope: Scope | None = None,
        route: str | None = None,
        **narrowing: Unpack[Narrowing],
    ) -> anthropic.Anthropic:
        """A genuine ``anthropic.Anthropic`` for ``principal``. The keywords narrow the role, never widen it."""
        chosen = scope if scope is not None else self.scope(**narrowing)
        return self._clients.get(principal, chosen, route, asynchronous=False)

    def async_client(
        self,
        principal: Principal | None,
        *,
        scope: Scope | None = None,
        route: str | None = None,
        **narrowing: Unpack[Narrowing],
    ) -> anthropic.AsyncAnthropic:
        """A genuine ``anthropic.AsyncAnthropic`` for ``principal``; its limits use ``limits.aio``."""
        chosen = scope if scope is not None else self.scope(**narrowing)
        return self._clients.get(principal, chosen, route, asynchronous=True)

    # -- reloads -----------------------------------------------------------------------------------

    def reload_policy(self, source: PolicySource | None = None, *, timeout: float = 5.0) -> Policy:
        """Load the policy again (from ``source``, or where it first came from) and put it in force.

        Every setting takes effect: roles, ``mode``, workspaces (their keys are read now), the tenant
        restriction and revocations; governed clients already handed out follow it from their next call.
        A policy that does not load (invalid, unreadable, or slower than ``timeout``) is refused and the
        :class:`PolicyError` raised here; what stays in force is ``on_reload_error``'s choice: the last good
        policy, marked stale (``"keep"``, the default), or a 503 ``backend_unavailable`` for every decision
        until a reload succeeds (``"deny"``).
        """
        return self._reloader.reload(source, timeout=timeout)

    def reload_policy_on_signal(self, signum: int | None = None) -> None:
        """Reload the policy when the process gets ``signum`` (default SIGHUP). Call from the main thread.

        The reload runs on a thread of its own (a signal handler must not wait for a lock). Where the server
        owns the signal (gunicorn's master uses SIGHUP to reload workers), use ``reload="watch"`` instead.
        """
        chosen = signal.SIGHUP if signum is None else signum
        previous = signal.getsignal(chosen)

        def reload() -> None:
            with contextlib.suppress(PolicyError):  # a refusal is logged and measured by the reloader
                self._reloader.reload(trigger=f"signal {signal.Signals(chosen).name}")

        def handler(received: int, frame: Any) -> None:
            threading.Thread(target=reload, name="claude_rbac-policy-signal", daemon=True).start()
            if callable(previous):
                previous(received, frame)

        signal.signal(chosen, handler)

    def reload_keys(self) -> list[str]:
        """Re-read every key source now (rotation); returns the workspaces whose key changed.

        New calls use the new key at once; calls in flight finish on the one they started with.
        """
        changed = self.enforcer.reload_keys()
        if changed:
            log.info("claude_rbac: API key rotated for workspace(s) %s", ", ".join(changed))
        return changed

    def reload_keys_on_signal(self, signum: int | None = None) -> None:
        """Reload keys when the process gets ``signum`` (default SIGHUP). Call from the main thread.

        Where the server owns the signal (gunicorn's master uses SIGHUP to reload workers), rely on
        key-file mtimes or call :meth:`reload_keys` from your own hook instead.
        """
        chosen = signal.SIGHUP if signum is None else signum
        previous = signal.getsignal(chosen)

        def handler(received: int, frame: Any) -> None:
            self.reload_keys()
            if callable(previous):
                previous(received, frame)

        signal.signal(chosen, handler)

    # -- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync clients' pool and the storage's connections (governed clients share them: close this)."""
        self._clients.close()
        self.quota.close()  # hands the ledger what waits first
        if self.spend_ledger is not None:
            self.spend_ledger.close()

    async def aclose(self) -> None:
        """Close every client pool, async ones included (call it before the event loop ends)."""
        await self._clients.aclose()
        await self.quota.aclose()
        self.close()

    def __enter__(self) -> RBAC:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RBAC:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until queued token settlements reached the storage (they run off the request path on Redis)."""
        return self.quota.flush(timeout)

    # -- limits ------------------------------------------------------------------------------------

    def rate_limits(self, principal: Principal | None, *, scope: Scope | None = None) -> list[dict[str, Any]]:
        """The principal's request buckets now: limit, remaining and reset time (for headers and pages)."""
        buckets = request_buckets(self.enforcer, principal, scope)
        return _as_limits(self.quota.remaining(buckets)) if buckets else []

    async def arate_limits(self, principal: Principal | None, *, scope: Scope | None = None) -> list[dict[str, Any]]:
        """:meth:`rate_limits` for async code: reads the storage through ``limits.aio``, never blocking the loop."""
        buckets = request_buckets(self.enforcer, principal, scope)
        return _as_limits(await self.quota.aremaining(buckets)) if buckets else []

    def spend(self, principal: Principal | None, *, scope: Scope | None = None) -> list[SpendWindow]:
        """The principal's spend windows now, one per limit that applies (day and month; the principal's own,
        the route ``scope``'s, the role pool's, the workspace's): limit, used and remaining in exact ``Decimal``
        dollars, and when each resets (UTC midnight, the first of the month). ``[]`` when none applies.

        ``used`` of a pool or workspace window is what everyone sharing it spent: show it only to whom may see it.
        """
        buckets = spend_buckets(self.enforcer, principal, scope)
        return spend_windows(self.quota.counts(buckets)) if buckets else []

    async def aspend(self, principal: Principal | None, *, scope: Scope | None = None) -> list[SpendWindow]:
        """:meth:`spend` for async code (never blocks the event loop)."""
        buckets = spend_buckets(self.enforcer, principal, scope)
        return spend_windows(await self.quota.acounts(buckets)) if buckets else []


def _as_limits(rows: Iterable[tuple[Bucket, int, float]]) -> list[dict[str, Any]]:
    return [
        {"kind": bucket.kind, "limit": bucket.limit, "remaining": remaining, "reset": reset}
        for bucket, remaining, reset in rows
    ]
