"""Workspaces, API-key sources, fingerprints, revocation and the tenant header.

A policy never holds a key: a workspace names where its key lives (an environment variable or a
file). Keys are read at startup (a missing one fails then, not at the first request) and again when
a key file changes or :meth:`KeyRing.reload` is called. Only fingerprints ever reach spans, logs and
errors.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .errors import PolicyError, PolicyProblem

__all__ = [
    "ORG_IDS_HEADER",
    "ActiveKey",
    "KeyRing",
    "KeySource",
    "Workspace",
    "fingerprint",
    "format_org_ids",
    "is_revoked",
]

ORG_IDS_HEADER: Final = "anthropic-allowed-org-ids"
DEFAULT_WORKSPACE: Final = "default"
KEY_LITERAL: Final = re.compile(r"sk-ant-[a-z]+[0-9]*-[A-Za-z0-9_-]{16,}")
"""What an Anthropic key looks like (a fingerprint, ``sk-ant-api03...AbCd#1a2b3c4d``, does not)."""
RELOAD_CHECK_SECONDS: Final = 1.0

AddProblem = Callable[..., None]


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where a key lives: an environment variable or a file. Never the key itself."""

    env: str | None = None
    file: str | None = None

    def describe(self) -> str:
        return f"env {self.env}" if self.env else f"file {self.file}"

    @classmethod
    def parse(cls, value: object) -> KeySource:
        """``{"env": "NAME"}`` or ``{"file": "path"}`` as a source; ``ValueError`` (never echoing a value) else."""
        if isinstance(value, str):
            raise ValueError('must be {env = "NAME"} or {file = "path"}, never a literal key')
        if not isinstance(value, Mapping) or set(value) not in ({"env"}, {"file"}):
            raise ValueError('must be {env = "NAME"} or {file = "path"}')
        ((kind, name),) = value.items()
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"`{kind}` must be a non-empty string")
        if kind == "env" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{name!r} is not an environment variable name")
        return cls(env=name) if kind == "env" else cls(file=name)

    def read(self) -> tuple[str | None, float | None]:
        """The key (stripped) and, for a file, its mtime. ``(None, None)`` when it is missing or empty."""
        if self.env:
            value = os.environ.get(self.env, "").strip()
            return (value or None), None
        assert self.file is not None
        try:
            stat = os.stat(self.file)
            with open(self.file, encoding="utf-8") as fh:
                value = fh.read().strip()
        except OSError:
            return None, None
        return (value or None), stat.st_mtime_ns

    def mtime(self) -> float | None:
        if not self.file:
            return None
        try:
            return os.stat(self.file).st_mtime_ns
        except OSError:
            return None


@dataclass(frozen=True, slots=True)
class Workspace:
    name: str
    api_key: KeySource | None = None
    services: Mapping[str, KeySource] = field(default_factory=dict)
    base_url: str | None = None

    def source_for(self, service: str | None) -> KeySource | None:
        if service is not None and service in self.services:
            return self.services[service]
        return self.api_key


def fingerprint(key: str) -> str:
    """A stable, non-secret id for ``key``: its visible kind, its last 4 characters and a short hash.

    Like Anthropic's ``partial_key_hint`` (``sk-ant-api03...AbCd``), plus 8 hex digits of SHA-256 so
    that two keys with the same tail differ. Short keys show no tail.
    """
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]
    match = re.match(r"(sk-ant-[a-z]+[0-9]*)-", key)
    kind = match.group(1) if match else "key"
    tail = key[-4:] if len(key) >= 20 else ""
    return f"{kind}...{tail}#{digest}"


def is_revoked(key_id: str, revoked: Iterable[str]) -> bool:
    """Whether ``key_id`` is in ``revoked``, compared in constant time."""
    found = False
    encoded = key_id.encode("utf-8")
    for item in revoked:
        found |= hmac.compare_digest(encoded, item.encode("utf-8"))
    return found


def format_org_ids(org_ids: Iterable[object]) -> str:
    """The ``anthropic-allowed-org-ids`` value: canonical UUIDs joined by commas, no spaces."""
    canonical = []
    for org_id in org_ids:
        if not isinstance(org_id, str):
            raise ValueError(f"an organisation id must be a UUID string, got {type(org_id).__name__}")
        try:
            parsed = uuid.UUID(org_id.strip())
        except ValueError:
            raise ValueError(f"{org_id!r} is not a UUID") from None
        if str(parsed) != org_id.strip().lower():
            raise ValueError(f"{org_id!r} is not a UUID in its canonical 8-4-4-4-12 form")
        canonical.append(str(parsed))
    if not canonical:
        raise ValueError("allowed_org_ids must name at least one organisation")
    return ",".join(dict.fromkeys(canonical))


# -- policy settings ----------------------------------------------------------------------------


def _find_key_literals(value: object, path: str, add: AddProblem) -> None:
    if isinstance(value, str):
        if KEY_LITERAL.search(value):
            add("looks like an API key: name an environment variable or a file instead", field=path)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _find_key_literals(key, path, add)
            _find_key_literals(item, f"{path}.{key}" if path else str(key), add)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _find_key_literals(item, f"{path}[{index}]", add)


def _key_source(value: object, field_path: str, add: AddProblem) -> KeySource | None:
    try:
        return KeySource.parse(value)
    except ValueError as exc:
        add(str(exc), field=field_path)
        return None


def _workspace(name: str, spec: object, add: AddProblem) -> Workspace | None:
    base = f"workspaces.{name}"
    if not isinstance(spec, Mapping):
        add("must be a table", field=base)
        return None
    for key in spec:
        if key not in ("api_key", "services", "base_url"):
            add(f"unknown key {key!r}", field=f"{base}.{key}")
    api_key = _key_source(spec["api_key"], f"{base}.api_key", add) if "api_key" in spec else None
    services: dict[str, KeySource] = {}
    raw_services = spec.get("services", {})
    if not isinstance(raw_services, Mapping):
        add("must be a table of service = {env/file}", field=f"{base}.services")
    else:
        for service, source in raw_services.items():
            parsed = _key_source(source, f"{base}.services.{service}", add)
            if parsed is not None:
                services[str(service)] = parsed
    if api_key is None and not services and "api_key" not in spec:
        add("needs `api_key` or `services`", field=base)
    base_url = spec.get("base_url")
    if base_url is not None and (not isinstance(base_url, str) or not re.match(r"https?://", base_url)):
        add("must be an http(s) URL", field=f"{base}.base_url")
        base_url = None
    return Workspace(name, api_key, services, base_url)


def compile_key_settings(data: Mapping[str, Any], roles: Mapping[str, Any], add: AddProblem) -> dict[str, Any]:
    """Validate the key-related parts of a policy document; return them compiled."""
    _find_key_literals(data, "", add)
    settings: dict[str, Any] = {}

    workspaces: dict[str, Workspace] = {}
    raw = data.get("workspaces")
    if raw is not None:
        if not isinstance(raw, Mapping) or not raw:
            add("must be a non-empty table of workspaces", field="workspaces")
        else:
            for name, spec in raw.items():
                workspace = _workspace(str(name), spec, add)
                if workspace is not None:
                    workspaces[workspace.name] = workspace
    settings["workspaces"] = workspaces

    default = data.get("default_workspace")
    if default is not None and (not isinstance(default, str) or default not in workspaces):
        add(f"names unknown workspace {default!r}", field="default_workspace")
        default = None
    if default is None and len(workspaces) == 1:
        default = next(iter(workspaces))
    settings["default_workspace"] = default

    for role in roles.values():
        if role.workspace is not None and role.workspace not in workspaces:
            add(f"names unknown workspace {role.workspace!r}", role=role.name, field="workspace")
        elif role.workspace is None and workspaces and default is None and role.allowed:
            add(
                "names no workspace and the policy has no default_workspace",
                role=role.name,
                field="workspace",
            )

    org_ids = data.get("allowed_org_ids")
    if org_ids is not None:
        try:
            if isinstance(org_ids, str) or not isinstance(org_ids, (list, tuple)):
                raise ValueError("must be a list of organisation UUIDs")
            settings["allowed_org_ids"] = format_org_ids(org_ids)
        except ValueError as exc:
            add(str(exc), field="allowed_org_ids")

    revoked = data.get("revoked", [])
    if not isinstance(revoked, (list, tuple)) or not all(isinstance(item, str) for item in revoked):
        add("must be a list of key fingerprints", field="revoked")
        revoked = []
    settings["revoked"] = tuple(revoked)
    return settings


# -- runtime ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActiveKey:
    """The key a workspace uses right now. ``repr`` never shows the key."""

    workspace: str
    key: str | None = field(repr=False)
    key_id: str | None
    base_url: str | None
    source: KeySource | None
    mtime: float | None = None


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
