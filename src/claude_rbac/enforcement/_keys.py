"""The keys in force: each workspace's current key, re-read when a key file changes, and revocation.

Keys are read at startup (a missing one fails then, not at the first request) and again when a key
file changes or :meth:`KeyRing.reload` is called. Only fingerprints ever reach spans, logs and errors.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from ..errors import PolicyError, PolicyProblem
from ..policy import KeySource, Workspace, fingerprint

__all__ = ["DEFAULT_WORKSPACE", "ActiveKey", "KeyRing", "is_revoked"]

DEFAULT_WORKSPACE: Final = "default"
RELOAD_CHECK_SECONDS: Final = 1.0


def is_revoked(key_id: str, revoked: Iterable[str]) -> bool:
    """Whether ``key_id`` is in ``revoked``, compared in constant time."""
    found = False
    encoded = key_id.encode("utf-8")
    for item in revoked:
        found |= hmac.compare_digest(encoded, item.encode("utf-8"))
    return found


@dataclass(frozen=True, slots=True)
class ActiveKey:
    """The key a workspace uses right now. ``repr`` never shows the key."""

    workspace: str
    key: str | None = field(repr=False)
    key_id: str | None
    base_url: str | None
    source: KeySource | None
    mtime: int | None = None


class KeyRing:
    """The current key of every workspace, re-read when a key file changes or on :meth:`reload`."""

    def __init__(
        self,
        workspaces: Mapping[str, Workspace],
        *,
        service: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        require_keys: bool = True,
    ) -> None:
        self._lock = threading.Lock()
        self._service = service
        if not workspaces:
            # No workspaces in the policy: one implicit workspace, keyed as the SDK would be.
            source = None if api_key is not None else KeySource(env="ANTHROPIC_API_KEY")
            workspaces = {DEFAULT_WORKSPACE: Workspace(DEFAULT_WORKSPACE, source, base_url=base_url)}
            self._literal = api_key
        else:
            self._literal = None
        self.workspaces = dict(workspaces)
        self._base_url = base_url
        self._active: dict[str, ActiveKey] = {}
        self._next_check = 0.0
        self.generation = 0
        missing = []
        for name in self.workspaces:
            active = self._read(name)
            self._active[name] = active
            if active.key is None and active.source is not None:
                missing.append(f"workspace {name!r}: {active.source.describe()}")
        if missing and require_keys:
            raise PolicyError([PolicyProblem(f"no API key found for {item}") for item in missing])

    def _read(self, name: str) -> ActiveKey:
        workspace = self.workspaces[name]
        source = workspace.source_for(self._service)
        base_url = workspace.base_url or self._base_url
        if source is None:
            key = self._literal
            return ActiveKey(name, key, fingerprint(key) if key else None, base_url, None)
        key, mtime = source.read()
        return ActiveKey(name, key, fingerprint(key) if key else None, base_url, source, mtime)

    def get(self, name: str) -> ActiveKey:
        """The workspace's key, re-reading key files at most once a second when they change."""
        self.poll()
        return self._active[name]

    def poll(self) -> None:
        """Re-read key files whose mtime changed, at most once a second (a clock read otherwise)."""
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + RELOAD_CHECK_SECONDS
            self._reload_changed_files()

    def _reload_changed_files(self) -> None:
        for name, active in list(self._active.items()):
            if active.source is not None and active.source.file and active.source.mtime() != active.mtime:
                self._swap(name)

    def _swap(self, name: str) -> bool:
        fresh = self._read(name)
        with self._lock:
            current = self._active[name]
            if fresh.key is None or fresh.key_id == current.key_id:
                # A half-written or deleted file keeps the last good key; so does an unchanged one.
                if fresh.key is not None or current.key is None:
                    self._active[name] = ActiveKey(
                        name, current.key, current.key_id, current.base_url, current.source, fresh.mtime
                    )
                return False
            self._active[name] = fresh
            self.generation += 1
            return True

    def reload(self) -> list[str]:
        """Re-read every key source now; returns the workspaces whose key changed."""
        return [name for name in list(self._active) if self._swap(name)]

    def active(self) -> list[ActiveKey]:
        return list(self._active.values())
