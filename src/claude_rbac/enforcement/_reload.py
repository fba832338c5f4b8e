"""Reloading the policy in force: on a call, on a signal, or when its file changes, and never into a broken one.

A new policy is loaded and validated whole, then installed with one assignment (see :mod:`._enforcer`), so
every decision is judged by the old policy or the new one, never a mix. A policy that fails to load is
refused: the last good one stays in force, marked stale on every decision, with an ERROR log and a point
on ``claude_rbac.policy.reloads`` (``on_reload_error="keep"``, the default, what Envoy, OPA and nginx do:
a typo must not take every Claude call down). ``on_reload_error="deny"`` denies everything instead until a
good policy loads (the failed reload may have been a revocation).

Watching a file costs a clock read per decision: its ``stat`` is compared at most once a second, by the
request that finds the second elapsed, and only a changed file is read. No thread is started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any, Final, Literal

from ..errors import PolicyError, PolicyProblem
from ..policy import Policy
from ._audit import Auditor
from ._enforcer import Enforcer

__all__ = ["OnReloadError", "PolicyReloader", "PolicySource", "ReloadMode", "load_policy", "policy_file"]

log = logging.getLogger("claude_rbac")

PolicySource = Policy | str | os.PathLike[str] | Mapping[str, Any]
OnReloadError = Literal["keep", "deny"]
ReloadMode = Literal["manual", "watch"]
RELOAD_CHECK_SECONDS: Final = 1.0
Signature = tuple[int, int, int] | None


def load_policy(source: PolicySource) -> Policy:
    if isinstance(source, Policy):
        return source
    if isinstance(source, Mapping):
        return Policy.from_dict(source)
    if isinstance(source, (str, os.PathLike)):
        return Policy.from_file(source)
    raise TypeError(f"policy must be a Policy, a file path or a dict, got {type(source).__name__}")


def policy_file(source: PolicySource) -> str | None:
    """The file a policy comes from: the path given, or the file a ``Policy.from_file`` was read from."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, Policy) and source.source is not None and os.path.isfile(source.source):
        return source.source
    return None


def _signature(path: str) -> Signature:
    """What tells a changed file: its mtime, size and inode (an atomic rename changes the inode)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def _load_within(source: PolicySource, timeout: float) -> Policy | BaseException:
    """Load ``source`` on a worker thread, so a stuck file system cannot hold the caller beyond ``timeout``."""
    result: list[Policy | BaseException] = []

    def load() -> None:
        try:
            result.append(load_policy(source))
        except BaseException as exc:
            result.append(exc)

    worker = threading.Thread(target=load, name="claude_rbac-policy-reload", daemon=True)
    worker.start()
    worker.join(timeout)
    return result[0] if result else TimeoutError(f"loading the policy took longer than {timeout} s")


class PolicyReloader:
    """Puts new policies in force for an :class:`Enforcer`, refusing broken ones."""

    def __init__(
        self,
        enforcer: Enforcer,
        auditor: Auditor,
        source: PolicySource,
        *,
        on_error: OnReloadError = "keep",
        mode: ReloadMode = "manual",
    ) -> None:
        if on_error not in ("keep", "deny"):
            raise ValueError(f"on_reload_error must be 'keep' or 'deny', got {on_error!r}")
        if mode not in ("manual", "watch"):
            raise ValueError(f"reload must be 'manual' or 'watch', got {mode!r}")
        self._enforcer = enforcer
        self._auditor = auditor
        self.on_error: OnReloadError = on_error
        self._source: PolicySource = policy_file(source) or source
        self._lock = threading.Lock()
        self.watched: str | None = None
        if mode == "watch":
            self.watched = policy_file(source)
            if self.watched is None:
                raise ValueError("reload='watch' needs a policy file: pass its path (or a Policy.from_file)")
            self._signature = _signature(self.watched)
            self._next_check = time.monotonic() + RELOAD_CHECK_SECONDS
            enforcer.watch(self.poll)

    def reload(self, source: PolicySource | None = None, *, timeout: float = 5.0, trigger: str = "") -> Policy:
        """Load ``source`` (default: where the policy in force came from) and put it in force, or refuse it.

        A refusal is logged, measured and raised as :class:`PolicyError`.
        """
        chosen = self._source if source is None else source
        loaded = _load_within(chosen, timeout)
        with self._lock:
            return self._apply(chosen, loaded, trigger)

    def poll(self) -> None:
        """Reload the watched file if it changed; at most one check a second, never two at once."""
        if time.monotonic() < self._next_check or not self._lock.acquire(blocking=False):
            return
        try:
            now = time.monotonic()
            if now < self._next_check:
                return
            self._next_check = now + RELOAD_CHECK_SECONDS
            assert self.watched is not None
            signature = _signature(self.watched)
            if signature == self._signature:
                return
            self._signature = signature
            try:
                loaded: Policy | BaseException = load_policy(self.watched)
            except Exception as exc:
                loaded = exc
            # A refusal is logged and measured; the request goes on under the policy in force.
            with contextlib.suppress(PolicyError):
                self._apply(self.watched, loaded, "the file changed")
        finally:
            self._lock.release()

    def _apply(self, chosen: PolicySource, loaded: Policy | BaseException, trigger: str) -> Policy:
        if isinstance(loaded, Policy):
            try:
                self._enforcer.install(loaded)
            except PolicyError as exc:  # a new workspace whose key cannot be read
                loaded = exc
            else:
                self._source = policy_file(chosen) or chosen
                self._auditor.record_reload("ok")
                log.info(
                    "claude_rbac: policy revision %s in force (%d roles)%s",
                    loaded.revision,
                    len(loaded.roles),
                    f" ({trigger})" if trigger else "",
                )
                return loaded
        running = self._enforcer.installed.revision
        if self.on_error == "deny":
            self._enforcer.fail_closed()
            consequence = "every call is denied until a good policy loads"
        else:
            self._enforcer.keep_stale()
            consequence = f"revision {running} stays in force, marked stale, until a good policy loads"
        self._auditor.record_reload("refused")
        why = str(loaded) if isinstance(loaded, PolicyError) else type(loaded).__name__
        log.error("claude_rbac: policy reload refused%s; %s:\n%s", f" ({trigger})" if trigger else "", consequence, why)
        if isinstance(loaded, PolicyError):
            raise loaded
        source = chosen if isinstance(chosen, (str, os.PathLike)) else None
        raise PolicyError([PolicyProblem(f"policy reload failed: {loaded}", os.fspath(source) if source else None)])
