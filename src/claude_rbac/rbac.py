"""``RBAC``: the public facade. It builds the parts (policy, quota, keys, auditor, enforcer) and hands out
governed clients; the parts do the work (see ``docs/architecture.md``)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import anthropic
from opentelemetry import metrics, trace

from .enforcement import (
    Auditor,
    ClientFactory,
    Enforcer,
    KeyRing,
    OnStorageError,
    RevocationSource,
    UserIdMode,
)
from .errors import PolicyError, PolicyProblem
from .policy import UNRESTRICTED, Decision, Mode, Policy, Principal, Scope, TokenEstimator, as_patterns, format_org_ids
from .quota import Bucket, Quota, warn_if_memory_in_many_workers

__all__ = ["RBAC"]

log = logging.getLogger("claude_rbac")

PolicySource = Policy | str | os.PathLike[str] | Mapping[str, Any]


def _load_policy(policy: PolicySource) -> Policy:
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, Mapping):
        return Policy.from_dict(policy)
    if isinstance(policy, (str, os.PathLike)):
        return Policy.from_file(policy)
    raise TypeError(f"policy must be a Policy, a file path or a dict, got {type(policy).__name__}")


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
    ) -> None:
        loaded = _load_policy(policy)
        self._policy_source = policy
        try:
            org_ids = format_org_ids(allowed_org_ids) if allowed_org_ids is not None else None
        except ValueError as exc:
            raise PolicyError([PolicyProblem(str(exc), "RBAC(allowed_org_ids=...)")]) from None
        self.quota = Quota(storage, key_prefix=key_prefix, storage_options=storage_options, async_storage=async_storage)
        if warn_multiprocess:
            warn_if_memory_in_many_workers(storage)
        self.auditor = Auditor(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            user_id=audit_user_id,
            user_id_key=audit_user_id_key,
            events=audit_events,
            logger_provider=logger_provider,
        )
        options = dict(client_options or {})
        self.enforcer = Enforcer(
            loaded,
            quota=self.quota,
            auditor=self.auditor,
            mode=mode,
            on_storage_error=on_storage_error,
            revoked=revoked,
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
        self._scopes: dict[tuple[Any, ...], Scope] = {}
        self._reload_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<RBAC policy={self.policy!r} storage={self.quota.uri.split('://')[0]}:// mode={self.mode}>"

    @property
    def policy(self) -> Policy:
        """The policy in force."""
        return self.enforcer.policy

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

    def scope(
        self,
        *,
        models: Iterable[str] | str | None = None,
        max_tokens: int | None = None,
        rpm: int | None = None,
        name: str | None = None,
    ) -> Scope:
        """A validated, cached route scope. Raises :class:`PolicyError` for a bad one (at decoration time)."""
        patterns = as_patterns(models)
        key = (patterns, max_tokens, rpm, name)
        scope = self._scopes.get(key)
        if scope is None:
            scope = Scope.build(models=patterns, max_tokens=max_tokens, rpm=rpm, name=name)
            if len(self._scopes) < 4096:
                self._scopes[key] = scope
        return scope

    def client(
        self,
        principal: Principal | None,
        *,
        models: Iterable[str] | str | None = None,
        max_tokens: int | None = None,
        rpm: int | None = None,
        scope: Scope | None = None,
        route: str | None = None,
    ) -> anthropic.Anthropic:
        """A genuine ``anthropic.Anthropic`` for ``principal``. The keywords narrow the role, never widen it."""
        chosen = scope if scope is not None else self.scope(models=models, max_tokens=max_tokens, rpm=rpm)
        return self._clients.get(principal, chosen, route, asynchronous=False)

    def async_client(
        self,
        principal: Principal | None,
        *,
        models: Iterable[str] | str | None = None,
        max_tokens: int | None = None,
        rpm: int | None = None,
        scope: Scope | None = None,
        route: str | None = None,
    ) -> anthropic.AsyncAnthropic:
        """A genuine ``anthropic.AsyncAnthropic`` for ``principal``; its limits use ``limits.aio``."""
        chosen = scope if scope is not None else self.scope(models=models, max_tokens=max_tokens, rpm=rpm)
        return self._clients.get(principal, chosen, route, asynchronous=True)

    # -- reloads -----------------------------------------------------------------------------------

    def reload_policy(self, source: PolicySource | None = None, *, timeout: float = 5.0) -> Policy:
        """Load the policy again (from ``source``, or where it first came from) and put it in force.

        Every setting takes effect: roles, ``mode``, workspaces (their keys are read now), the tenant
        restriction and revocations; governed clients already handed out follow it from their next call.
        Fails closed: if loading raises or takes longer than ``timeout``, every decision is a 503
        ``backend_unavailable`` until a reload succeeds (the failed reload may have been a revocation),
        and the error is raised here.
        """
        chosen = self._policy_source if source is None else source
        result: list[Policy | BaseException] = []

        def load() -> None:
            try:
                result.append(_load_policy(chosen))
            except BaseException as exc:
                result.append(exc)

        worker = threading.Thread(target=load, name="claude_rbac-policy-reload", daemon=True)
        worker.start()
        worker.join(timeout)
        loaded = result[0] if result else TimeoutError(f"loading the policy took longer than {timeout} s")
        with self._reload_lock:
            if isinstance(loaded, Policy):
                try:
                    self.enforcer.install(loaded)
                except PolicyError as exc:  # a new workspace whose key cannot be read
                    loaded = exc
                else:
                    self._policy_source = chosen
                    log.info("claude_rbac: policy reloaded (%d roles)", len(loaded.roles))
                    return loaded
            self.enforcer.fail_closed()
        log.error(
            "claude_rbac: policy reload failed (%s); denying every call until a reload succeeds", type(loaded).__name__
        )
        if isinstance(loaded, PolicyError):
            raise loaded
        raise PolicyError([PolicyProblem(f"policy reload failed: {loaded}", self.policy.source)]) from None

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
        self.quota.close()

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
        buckets = self._request_buckets(principal, scope)
        return _as_limits(self.quota.remaining(buckets)) if buckets else []

    async def arate_limits(self, principal: Principal | None, *, scope: Scope | None = None) -> list[dict[str, Any]]:
        """:meth:`rate_limits` for async code: reads the storage through ``limits.aio``, never blocking the loop."""
        buckets = self._request_buckets(principal, scope)
        return _as_limits(await self.quota.aremaining(buckets)) if buckets else []

    def _request_buckets(self, principal: Principal | None, scope: Scope | None) -> tuple[Bucket, ...]:
        role = self.policy.role(principal.role) if principal is not None else None
        if role is None or principal is None:
            return ()
        chosen = scope or UNRESTRICTED
        return self.quota.buckets(
            role=role.name, principal_id=principal.id, rpm=role.rpm, scope_name=chosen.name, scope_rpm=chosen.rpm
        )


def _as_limits(rows: Iterable[tuple[Bucket, int, float]]) -> list[dict[str, Any]]:
    return [
        {"kind": bucket.kind, "limit": bucket.limit, "remaining": remaining, "reset": reset}
        for bucket, remaining, reset in rows
    ]
