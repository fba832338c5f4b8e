"""``RBAC``: the runtime that ties the policy, the limits, the keys and the audit trail together.

One instance per app. It builds one anthropic base client per workspace key (about 18 ms each, so
once) and derives each governed client from it with ``with_options`` (tens of microseconds), keeping
the most recent derivations in a small LRU so a hot principal costs a dict lookup.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, overload

import anthropic
from opentelemetry import metrics, trace
from opentelemetry.util.types import AttributeValue

from .audit import Auditor, UserIdMode
from .calls import TokenEstimator
from .client import Binding, Governor, error_for
from .deployment import warn_if_memory_in_many_workers
from .errors import PolicyError, PolicyProblem
from .keys import ORG_IDS_HEADER, ActiveKey, KeyRing, format_org_ids, is_revoked
from .policy import UNRESTRICTED, Decision, Policy, Principal, Scope, UnavailablePolicy, as_patterns
from .quota import Bucket, Quota

__all__ = ["RBAC"]

log = logging.getLogger("claude_rbac")

Mode = Literal["enforce", "shadow"]
OnStorageError = Literal["deny", "allow"]
PolicySource = Policy | str | os.PathLike[str] | Mapping[str, Any]
_CLIENT_CACHE_SIZE = 1024
_GUARD_MEMO_SIZE = 4096


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
        revoked: Iterable[str] | Callable[[], Iterable[str]] | None = None,
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
        self.policy = _load_policy(policy)
        self._policy_source = policy
        if on_storage_error not in ("deny", "allow"):
            raise ValueError(f"on_storage_error must be 'deny' or 'allow', got {on_storage_error!r}")
        if mode not in (None, "enforce", "shadow"):
            raise ValueError(f"mode must be 'enforce' or 'shadow', got {mode!r}")
        self.mode: Mode = mode or self.policy.settings.get("mode", "enforce")
        self.on_storage_error: OnStorageError = on_storage_error
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
        self.token_estimator = token_estimator
        self.keys = KeyRing(
            self.policy.settings.get("workspaces", {}), service=service, api_key=api_key, base_url=base_url
        )
        try:
            org_ids = format_org_ids(allowed_org_ids) if allowed_org_ids is not None else None
        except ValueError as exc:
            raise PolicyError([PolicyProblem(str(exc), "RBAC(allowed_org_ids=...)")]) from None
        self.allowed_org_ids: str | None = org_ids or self.policy.settings.get("allowed_org_ids")
        self._revoked = revoked
        self._tracer_provider = tracer_provider
        self._client_options = dict(client_options or {})
        self._lock = threading.Lock()
        self._roots: dict[tuple[str | None, bool], anthropic.Anthropic | anthropic.AsyncAnthropic] = {}
        # An RBAC dropped without close() still releases its sync connection pools (async ones need their loop).
        weakref.finalize(self, _close_sync_roots, self._roots)
        self._bases: dict[tuple[str | None, str | None, bool], anthropic.Anthropic | anthropic.AsyncAnthropic] = {}
        self._derived: dict[tuple[Any, ...], anthropic.Anthropic | anthropic.AsyncAnthropic] = {}
        self._scopes: dict[tuple[Any, ...], Scope] = {}
        self._guard_memo: dict[tuple[Any, ...], Any] = {}

    def __repr__(self) -> str:
        return f"<RBAC policy={self.policy!r} storage={self.quota.uri.split('://')[0]}:// mode={self.mode}>"

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
        if model is None:
            if max_tokens is None:
                return self.policy.decide(principal, scope=scope or UNRESTRICTED)
            return self.policy.decide(principal, max_tokens=max_tokens, scope=scope or UNRESTRICTED)
        if max_tokens is None:
            return self.policy.decide(principal, model=model, scope=scope or UNRESTRICTED)
        return self.policy.decide(principal, model=model, max_tokens=max_tokens, scope=scope or UNRESTRICTED)

    def has_role(self, principal: Principal | None, role: str) -> bool:
        return self.policy.has_role(principal, role)

    def validate_role(self, role: str) -> None:
        """Raise :class:`PolicyError` when ``role`` is not in the policy (route guards call this at startup)."""
        if role not in self.policy.roles:
            raise PolicyError(
                [PolicyProblem(f"requires_role({role!r}) names a role the policy does not have", self.policy.source)]
            )

    def key_revoked(self, key_id: str) -> bool:
        revoked: Iterable[str] = self.policy.settings.get("revoked", ())
        if is_revoked(key_id, revoked):
            return True
        if self._revoked is None:
            return False
        extra = self._revoked() if callable(self._revoked) else self._revoked
        return is_revoked(key_id, extra)

    def enforced(self, principal: Principal | None) -> bool:
        role = self.policy.role(principal.role) if principal is not None else None
        mode = role.mode if role is not None and role.mode is not None else self.mode
        return mode == "enforce"

    # -- route guard -------------------------------------------------------------------------------

    def require(self, principal: Principal | None, role: str, *, route: str | None = None) -> Decision:
        """The route guard: record the decision, and raise ``NotAuthenticated``/``AccessDenied`` on a denial.

        In shadow mode a denial is recorded (``claude_rbac.enforced=false``) and returned, not raised.
        The decision and its attributes are memoised per (principal, role, route, key generation): a
        guarded request then costs a dict lookup plus the span and the metric point.
        """
        memo_key = (principal, role, route, self.keys.generation)
        memo = self._guard_memo.get(memo_key)
        if memo is None:
            memo = self._guard_decision(principal, role, route)
            if len(self._guard_memo) >= _GUARD_MEMO_SIZE:
                self._guard_memo.clear()
            self._guard_memo[memo_key] = memo
        decision, attributes, server_attributes, enforced = memo
        self.auditor.record(decision, attributes)
        server_span = trace.get_current_span()
        if server_span.is_recording():
            server_span.set_attributes(server_attributes)
        if not decision.allowed and enforced:
            raise error_for(decision)
        return decision

    def _guard_decision(
        self, principal: Principal | None, role: str, route: str | None
    ) -> tuple[Decision, dict[str, AttributeValue], dict[str, AttributeValue], bool]:
        decision = self.policy.authorize_role(principal, role)
        enforced = self.enforced(principal)
        key = self.keys.get(self._workspace_of(self.policy.role(principal.role) if principal is not None else None))
        attributes = self.auditor.attributes(
            decision,
            principal,
            required_role=role,
            route=route,
            enforced=enforced,
            key_id=key.key_id,
            workspace=key.workspace,
        )
        server_attributes = {name: value for name, value in attributes.items() if name in _SERVER_SPAN_ATTRIBUTES}
        return decision, attributes, server_attributes, enforced

    # -- policy reload -----------------------------------------------------------------------------

    def reload_policy(self, source: PolicySource | None = None, *, timeout: float = 5.0) -> Policy:
        """Load the policy again (from ``source``, or where it first came from) and swap it in atomically.

        Fails closed: if loading raises or takes longer than ``timeout``, every decision is a 503
        ``backend_unavailable`` until a reload succeeds (the failed reload may have been a
        revocation), and the error is raised here. Clients derived earlier keep their limits until
        they are derived again; the cache is cleared on every reload.
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
        with self._lock:
            self._derived.clear()
            self._scopes.clear()
            self._guard_memo.clear()
        loaded = result[0] if result else TimeoutError(f"loading the policy took longer than {timeout} s")
        if isinstance(loaded, Policy):
            self.policy = loaded
            self._policy_source = chosen
            log.info("claude_rbac: policy reloaded (%d roles)", len(loaded.roles))
            return loaded
        self.policy = UnavailablePolicy(
            self.policy.roles,
            on_excess=self.policy.on_excess,
            source=self.policy.source,
            settings=self.policy.settings,
            raw=self.policy.raw,
        )
        log.error(
            "claude_rbac: policy reload failed (%s); denying every call until a reload succeeds", type(loaded).__name__
        )
        if isinstance(loaded, PolicyError):
            raise loaded
        raise PolicyError([PolicyProblem(f"policy reload failed: {loaded}", self.policy.source)]) from None

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
        models_key = as_patterns(models)
        key = (models_key, max_tokens, rpm, name)
        scope = self._scopes.get(key)
        if scope is None:
            scope = Scope.build(models=models_key, max_tokens=max_tokens, rpm=rpm, name=name)
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
        return self._derive(principal, chosen, route, asynchronous=False)

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
        return self._derive(principal, chosen, route, asynchronous=True)

    @overload
    def _derive(
        self, principal: Principal | None, scope: Scope, route: str | None, *, asynchronous: Literal[False]
    ) -> anthropic.Anthropic: ...

    @overload
    def _derive(
        self, principal: Principal | None, scope: Scope, route: str | None, *, asynchronous: Literal[True]
    ) -> anthropic.AsyncAnthropic: ...

    def _derive(self, principal: Principal | None, scope: Scope, route: str | None, *, asynchronous: bool) -> Any:
        self.keys.poll()  # a rotated key file bumps the generation, so the next line misses
        cache_key = (principal, scope, route, asynchronous, self.keys.generation)
        derived = self._derived.get(cache_key)  # a dict read is atomic: no lock on the hot path
        if derived is not None:
            return derived
        role = self.policy.role(principal.role) if principal is not None else None
        key = self.keys.get(self._workspace_of(role))
        base = self._base(key, asynchronous)
        binding = Binding(principal, scope, role, key, route, self.enforced(principal))
        derived = base.with_options(middleware=[*base.middleware, Governor(self, binding)])
        with self._lock:
            if len(self._derived) >= _CLIENT_CACHE_SIZE:
                self._derived.clear()  # simpler than an LRU, and a miss costs one with_options()
            self._derived[cache_key] = derived
        return derived

    def _workspace_of(self, role: Any) -> str:
        if role is not None and role.workspace is not None:
            return str(role.workspace)
        default = self.policy.settings.get("default_workspace")
        if default is not None:
            return str(default)
        return next(iter(self.keys.workspaces))

    def _base(self, key: ActiveKey, asynchronous: bool) -> anthropic.Anthropic | anthropic.AsyncAnthropic:
        """The base client for one key: derived from one constructed client per base URL (one HTTP pool).

        Constructing an anthropic client costs about 18 ms, so a rotated key or another workspace on the
        same host gets ``with_options(api_key=...)`` of the existing one instead.
        """
        cache_key = (key.key_id, key.base_url, asynchronous)
        with self._lock:
            base = self._bases.get(cache_key)
            root = self._roots.get((key.base_url, asynchronous))
        if base is not None:
            return base
        if root is None:
            root = self._construct(key, asynchronous)
            with self._lock:
                root = self._roots.setdefault((key.base_url, asynchronous), root)
        base = root if root.api_key == key.key else root.with_options(api_key=key.key)
        with self._lock:
            return self._bases.setdefault(cache_key, base)

    def _construct(self, key: ActiveKey, asynchronous: bool) -> anthropic.Anthropic | anthropic.AsyncAnthropic:
        options: dict[str, Any] = dict(self._client_options)
        if self.allowed_org_ids:
            options["default_headers"] = {**options.get("default_headers", {}), ORG_IDS_HEADER: self.allowed_org_ids}
        cls = anthropic.AsyncAnthropic if asynchronous else anthropic.Anthropic
        client = cls(api_key=key.key, base_url=key.base_url, **options)
        if self._tracer_provider is not None:
            client = client.with_options(
                open_telemetry={**client.open_telemetry, "tracer_provider": self._tracer_provider}
            )
        return client

    def reload_keys_on_signal(self, signum: int | None = None) -> None:
        """Reload keys when the process gets ``signum`` (default SIGHUP). Call from the main thread.

        Where the server owns the signal (gunicorn's master uses SIGHUP to reload workers), rely on
        key-file mtimes or call :meth:`reload_keys` from your own hook instead.
        """
        import signal

        chosen = signal.SIGHUP if signum is None else signum
        previous = signal.getsignal(chosen)

        def handler(received: int, frame: Any) -> None:
            self.reload_keys()
            if callable(previous):
                previous(received, frame)

        signal.signal(chosen, handler)

    def reload_keys(self) -> list[str]:
        """Re-read every key source now (rotation); returns the workspaces whose key changed.

        New calls use the new key at once; calls in flight finish on the one they started with.
        """
        changed = self.keys.reload()
        if changed:
            log.info("claude_rbac: API key rotated for workspace(s) %s", ", ".join(changed))
        return changed

    # -- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync base clients and the storage's connections (governed clients share them: close this)."""
        for base in self._drop_bases(asynchronous=False):
            base.close()
        self.quota.close()

    async def aclose(self) -> None:
        """Close every base client, async ones included (call it before the event loop ends)."""
        for base in self._drop_bases(asynchronous=True):
            await base.close()
        await self.quota.aclose()
        self.close()

    def _drop_bases(self, *, asynchronous: bool) -> list[Any]:
        """Forget the clients of one kind; returns the constructed ones, which own the connection pools."""
        with self._lock:
            for key in [key for key in self._bases if key[2] is asynchronous]:
                del self._bases[key]
            roots = [self._roots.pop(key) for key in [key for key in self._roots if key[1] is asynchronous]]
            self._derived = {key: value for key, value in self._derived.items() if key[3] is not asynchronous}
        return roots

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
        {"kind": bucket.kind, "limit": bucket.item.amount, "remaining": remaining, "reset": reset}
        for bucket, remaining, reset in rows
    ]


def _close_sync_roots(roots: dict[tuple[str | None, bool], Any]) -> None:
    for (_, asynchronous), root in list(roots.items()):
        if not asynchronous:
            root.close()


_SERVER_SPAN_ATTRIBUTES = frozenset(
    {"enduser.id", "enduser.pseudo.id", "user.roles", "claude_rbac.decision", "claude_rbac.decision.reason"}
)
