"""Workspaces and where their keys live, the tenant restriction and revocations: the policy's half of keys.

A policy never holds a key: a workspace names an environment variable or a file. This module validates
those settings and knows how to name a key without showing it (:func:`fingerprint`); reading keys and
rotating them is the runtime's (:mod:`claude_rbac.enforcement`).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .._secrets import KEY_LITERAL, fingerprint, hide_keys, redact
from ._spend import NO_SPEND, Spend, micro_dollars

__all__ = [
    "KEY_LITERAL",
    "ORG_IDS_HEADER",
    "KeySource",
    "Workspace",
    "compile_key_settings",
    "fingerprint",
    "format_org_ids",
    "hide_keys",
    "redact",
]

ORG_IDS_HEADER: Final = "anthropic-allowed-org-ids"
_WORKSPACE_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")

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
        """``{"env": "NAME"}`` or ``{"file": "path"}`` as a source; ``ValueError`` (never echoing a key) else."""
        if isinstance(value, str):
            raise ValueError('must be {env = "NAME"} or {file = "path"}, never a literal key')
        if not isinstance(value, Mapping) or set(value) not in ({"env"}, {"file"}):
            raise ValueError('must be {env = "NAME"} or {file = "path"}')
        ((kind, name),) = value.items()
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"`{kind}` must be a non-empty string")
        if KEY_LITERAL.search(name):
            raise ValueError(f"`{kind}` looks like an API key: name the environment variable or file that holds it")
        if kind == "env" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{redact(name)} is not an environment variable name")
        return cls(env=name) if kind == "env" else cls(file=name)

    def read(self) -> tuple[str | None, int | None]:
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

    def mtime(self) -> int | None:
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
    id: str | None = None
    """The Anthropic workspace id (``wrkspc_...``): the one ``workspace_id`` a request of this workspace may name."""
    spend: Spend = NO_SPEND
    """US dollars every role of this workspace shares per UTC day/month (micro-dollars)."""

    def source_for(self, service: str | None) -> KeySource | None:
        if service is not None and service in self.services:
            return self.services[service]
        return self.api_key


def format_org_ids(org_ids: Iterable[object]) -> str:
    """The ``anthropic-allowed-org-ids`` value: canonical UUIDs joined by commas, no spaces."""
    canonical = []
    for org_id in org_ids:
        if not isinstance(org_id, str):
            raise ValueError(f"an organisation id must be a UUID string, got {type(org_id).__name__}")
        try:
            parsed = uuid.UUID(org_id.strip())
        except ValueError:
            raise ValueError(f"{redact(org_id)} is not a UUID") from None
        if str(parsed) != org_id.strip().lower():
            raise ValueError(f"{redact(org_id)} is not a UUID in its canonical 8-4-4-4-12 form")
        canonical.append(str(parsed))
    if not canonical:
        raise ValueError("allowed_org_ids must name at least one organisation")
    return ",".join(dict.fromkeys(canonical))


# -- compiling the policy's key settings --------------------------------------------------------------


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
        if key not in ("api_key", "services", "base_url", "id", "spend"):
            add(f"unknown key {redact(key)}", field=f"{base}.{key}")
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
    workspace_id = spec.get("id")
    if workspace_id is not None and (not isinstance(workspace_id, str) or not _WORKSPACE_ID.fullmatch(workspace_id)):
        add("must be the workspace's id (letters, digits, _ and -), e.g. wrkspc_01AbC", field=f"{base}.id")
        workspace_id = None
    return Workspace(
        name, api_key, services, base_url, workspace_id, parse_spend(spec.get("spend"), f"{base}.spend", add)
    )


def parse_spend(value: object, field_path: str, add: AddProblem, role: str | None = None) -> Spend:
    """A ``spend = { day = 2.00, month = 40 }`` table (US dollars) as micro-dollars; problems name the field."""
    if value is None:
        return Spend()
    located = {"role": role} if role is not None else {}
    if not isinstance(value, Mapping):
        add("must be a table with `day` and/or `month` in US dollars", field=field_path, **located)
        return Spend()
    parsed: dict[str, int | None] = {}
    for key, amount in value.items():
        if key not in ("day", "month"):
            add(f"unknown key {redact(key)} (expected day, month)", field=f"{field_path}.{key}", **located)
            continue
        parsed[key], problem = micro_dollars(amount)
        if problem is not None:
            add(problem, field=f"{field_path}.{key}", **located)
    spend = Spend(parsed.get("day"), parsed.get("month"))
    if not value:
        add("must set `day` and/or `month`", field=field_path, **located)
    return spend


@dataclass(frozen=True, slots=True)
class KeySettings:
    """The key-related settings of a policy, compiled."""

    workspaces: Mapping[str, Workspace]
    default_workspace: str | None
    allowed_org_ids: str | None
    revoked: tuple[str, ...]


def compile_key_settings(data: Mapping[str, Any], roles: Mapping[str, Any], add: AddProblem) -> KeySettings:
    """Validate the key-related parts of a policy document; return them compiled."""
    _find_key_literals(data, "", add)
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

    default = data.get("default_workspace")
    if default is not None and (not isinstance(default, str) or default not in workspaces):
        add(f"names unknown workspace {redact(default)}", field="default_workspace")
        default = None
    if default is None and len(workspaces) == 1:
        default = next(iter(workspaces))

    for role in roles.values():
        if role.workspace is not None and role.workspace not in workspaces:
            add(f"names unknown workspace {redact(role.workspace)}", role=role.name, field="workspace")
        elif role.workspace is None and workspaces and default is None and role.allowed:
            add("names no workspace and the policy has no default_workspace", role=role.name, field="workspace")

    org_ids: str | None = None
    raw_org_ids = data.get("allowed_org_ids")
    if raw_org_ids is not None:
        try:
            if isinstance(raw_org_ids, str) or not isinstance(raw_org_ids, (list, tuple)):
                raise ValueError("must be a list of organisation UUIDs")
            org_ids = format_org_ids(raw_org_ids)
        except ValueError as exc:
            add(str(exc), field="allowed_org_ids")

    revoked = data.get("revoked", [])
    if not isinstance(revoked, (list, tuple)) or not all(isinstance(item, str) for item in revoked):
        add("must be a list of key fingerprints", field="revoked")
        revoked = []
    return KeySettings(workspaces, default, org_ids, tuple(revoked))
