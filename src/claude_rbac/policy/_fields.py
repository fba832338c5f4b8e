"""The request fields that change what a call costs, what it can reach or where its data is processed, decided
against the role's grants and the route's scope; and the list of every field the governor understands.

A role grants values per key (:data:`~._grants.GRANT_KEYS`); a request asks for them in these places:

==================  ======================================================================================
grant               what the request asks for
==================  ======================================================================================
``tools``           each ``tools`` entry's ``type`` (a client tool, with no type, is ``custom``)
``mcp_servers``     each ``mcp_servers`` entry's ``url``
``service_tiers``   ``service_tier``
``speeds``          ``speed``
``inference_geos``  ``inference_geo``
``betas``           the ``anthropic-beta`` header (the SDK's ``betas=``) and any ``betas`` body field
(the workspace)     the ``anthropic-workspace-id`` header (the SDK's ``workspace_id=``) or a body field:
                    only the id of the role's own policy workspace
(code execution)    ``container``: only in a request that carries a code execution tool
==================  ======================================================================================

An absent field (or ``null``) is the API's default and always passes. Every other field is either in
:data:`GOVERNED_FIELDS` or :data:`HARMLESS_FIELDS`; anything else is an unknown field, recorded on the
decision (``unknown_fields``) and refused when the role is ``strict``. Pure: no counters, spans or network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from ..errors import InvalidRequest, message_for
from ._grants import tool_family, value_names
from ._model import Decision, FieldValues, Role, Settings
from ._scope import Scope

__all__ = [
    "BATCH_FIELDS",
    "BETA_HEADER",
    "GOVERNED_FIELDS",
    "HARMLESS_FIELDS",
    "KNOWN_FIELDS",
    "WORKSPACE_HEADER",
    "FieldCheck",
    "merge_fields",
]

BETA_HEADER: Final = "anthropic-beta"
WORKSPACE_HEADER: Final = "anthropic-workspace-id"

GOVERNED_FIELDS: Final[Mapping[str, str]] = {
    "model": "models",
    "max_tokens": "max_tokens (clamped or refused)",
    "fallbacks": "models (each entry's), max_tokens",
    "thinking": "max_tokens (budget_tokens scaled under a clamped cap)",
    "tools": "tools (each type); models and max_tokens of a tool that calls a model (the advisor)",
    "mcp_servers": "mcp_servers (each url)",
    "service_tier": "service_tiers",
    "speed": "speeds",
    "inference_geo": "inference_geos",
    "betas": "betas",
    "workspace_id": "the role's policy workspace (its id)",
    "container": "tools: only with a code execution tool the role is granted",
}
"""Every request field the policy decides, and the keys that decide it."""
HARMLESS_FIELDS: Final[Mapping[str, str]] = {
    "messages": "the conversation: data",
    "system": "the system prompt: data",
    "metadata": "an opaque user id for abuse detection",
    "stop_sequences": "where the answer stops: shortens it",
    "stream": "how the answer is delivered",
    "tool_choice": "picks among the tools the request already has (each governed)",
    "temperature": "sampling",
    "top_p": "sampling",
    "top_k": "sampling",
    "cache_control": "prompt caching: tokens counted and settled like any others",
    "diagnostics": "asks why the prompt cache missed",
    "output_config": "output format and effort: bounded by max_tokens",
    "output_format": "structured output (the older spelling of output_config.format)",
    "context_management": "clears old tool results and thinking: shrinks the context",
    "compaction": "summarises the conversation: one call on the same model, bounded by max_tokens",
    "fallback_credit_token": "bills a retry's cache writes at the cache-read rate: lowers the cost",
    "thread": "server-held conversation state: a beta feature, sent with its beta header (governed by betas)",
    "user_profile_id": "the party the app acts for; it can bill only a customer who allowed the organisation",
    "billing_policy": "bills that customer instead of the organisation, never someone who has not agreed",
}
"""The request fields that change neither cost, reach nor data residency beyond what the governed ones decide."""
KNOWN_FIELDS: Final = frozenset(GOVERNED_FIELDS) | frozenset(HARMLESS_FIELDS)
_ASKED_FIELDS: Final = frozenset(
    {"tools", "mcp_servers", "service_tier", "speed", "inference_geo", "betas", "workspace_id", "container"}
)
"""The fields :meth:`FieldCheck.item` decides or records: a request with none of them (and no unknown one) passes."""
BATCH_FIELDS: Final = frozenset({"requests", "custom_id", "params", "betas", "workspace_id", "user_profile_id"})
"""The fields of a batch and of its requests (each request's ``params`` is a request of its own)."""
IMPLIED_BETAS: Final = {"messages.count_tokens": frozenset({"token-counting-2024-11-01"})}
"""Betas the SDK itself adds to an endpoint (``beta.messages.count_tokens``): they change nothing."""
_SCALARS: Final = {"service_tier": "service_tiers", "speed": "speeds", "inference_geo": "inference_geos"}
"""The one-value fields, and the grant that decides each."""
_REASONS: Final = {
    "tools": "tool_not_allowed",
    "mcp_servers": "mcp_server_not_allowed",
    "service_tiers": "service_tier_not_allowed",
    "speeds": "speed_not_allowed",
    "inference_geos": "inference_geo_not_allowed",
    "betas": "beta_not_allowed",
}
_SHOWN: Final = 256
_RECORDED: Final = 32


def merge_fields(*sets: FieldValues) -> FieldValues:
    """The field values of several requests (a batch), each name once, each value once."""
    merged: dict[str, dict[str, None]] = {}
    for values in sets:
        for name, items in values:
            merged.setdefault(name, {}).update(dict.fromkeys(items))
    return tuple((name, tuple(items)[:_RECORDED]) for name, items in merged.items())


def _shown(value: str) -> str:
    return value if len(value) <= _SHOWN else f"{value[:_SHOWN]}..."


def _shown_url(url: str) -> str:
    """An MCP server's URL without what may be a secret: no user info, query or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "?"
    return _shown(f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else "?")


def _text(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a string, got {type(value).__name__}.")
    return value


def _list(value: object, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"{field} must be a list.")
    return value


def _tool_type(tool: object) -> str:
    if not isinstance(tool, Mapping):
        raise InvalidRequest("each tool must be an object.")
    kind = tool.get("type")
    if kind is None:
        return "custom"
    if not isinstance(kind, str):
        raise InvalidRequest(f"a tool's type must be a string, got {type(kind).__name__}.")
    return kind


def _mcp_url(server: object) -> str:
    url = server.get("url") if isinstance(server, Mapping) else None
    if not isinstance(url, str):
        raise InvalidRequest("each MCP server needs a url (a string).")
    return url


def header_values(headers: Mapping[str, object] | None, name: str) -> list[str]:
    """Every value of header ``name`` (any letter case; an omitted header has none), split at commas."""
    found: list[str] = []
    for key, value in (headers or {}).items():
        if isinstance(key, str) and key.lower() == name and isinstance(value, str):
            found.extend(part.strip() for part in value.split(",") if part.strip())
    return found


@dataclass(frozen=True, slots=True)
class FieldCheck:
    """The request-field question for one call: the role (already allowed its models), the route, the settings."""

    role: Role
    scope: Scope
    settings: Settings
    operation: str

    def item(self, decision: Decision, item: Mapping[str, Any]) -> Decision:
        """``decision`` with the request's field values, or the denial of the first field it may not send."""
        if _ASKED_FIELDS.isdisjoint(item) and KNOWN_FIELDS.issuperset(item):
            return decision  # the common call: nothing to decide or record
        tools = [_tool_type(tool) for tool in _list(item.get("tools"), "tools")]
        urls = [_mcp_url(server) for server in _list(item.get("mcp_servers"), "mcp_servers")]
        scalars = [(field, _text(item.get(field), field)) for field in _SCALARS]
        betas = [beta for beta in (_text(b, "each beta") for b in _list(item.get("betas"), "betas")) if beta]
        workspace = _text(item.get("workspace_id"), "workspace_id")
        asked = {
            "tools": tools,
            "mcp_servers": [_shown_url(url) for url in urls],
            **{field: [value] for field, value in scalars if value is not None},
            "betas": betas,
            "workspace_id": [workspace] if workspace is not None else [],
        }
        decision = self._record(decision, asked, [str(key) for key in item if key not in KNOWN_FIELDS])
        for tool in tools:
            if (denied := self._judge(decision, "tools", tool)) is not None:
                return denied
        if item.get("container") is not None and "code_execution" not in map(tool_family, tools):
            message = message_for("tool_not_allowed", "container", role=self.role.name)
            return decision.denied("tool_not_allowed", message)
        for url in urls:
            if (denied := self._judge(decision, "mcp_servers", url, _shown_url)) is not None:
                return denied
        for field, value in scalars:
            if value is not None and (denied := self._judge(decision, _SCALARS[field], value)) is not None:
                return denied
        if (denied := self._betas_and_workspace(decision, betas, [workspace] if workspace else [])) is not None:
            return denied
        return self._strict(decision)

    def call(self, decision: Decision, body: Mapping[str, Any], headers: Mapping[str, object] | None) -> Decision:
        """The whole call's fields on an allowed ``decision``: its headers' betas and workspace, and a batch's own
        unknown fields (the body's fields of each request in it were decided by :meth:`item`)."""
        batch = self.operation == "messages.batches.create"
        if not (headers or batch):
            return decision
        unknown: list[str] = []
        if batch:
            requests = [request for request in body.get("requests", ()) if isinstance(request, Mapping)]
            unknown = [str(key) for part in (body, *requests) for key in part if key not in BATCH_FIELDS]
            betas = [beta for beta in (_text(b, "each beta") for b in _list(body.get("betas"), "betas")) if beta]
            workspaces = [value for value in [_text(body.get("workspace_id"), "workspace_id")] if value]
        else:
            betas, workspaces = [], []
        betas += header_values(headers, BETA_HEADER)
        workspaces += header_values(headers, WORKSPACE_HEADER)
        decision = self._record(decision, {"betas": betas, "workspace_id": workspaces}, unknown)
        if (denied := self._betas_and_workspace(decision, betas, workspaces)) is not None:
            return denied
        return self._strict(decision)

    def _betas_and_workspace(self, decision: Decision, betas: list[str], workspaces: list[str]) -> Decision | None:
        """The first denial among these betas (less those the SDK adds itself) and workspace ids, if any.
        Judged as sent: the values recorded on the decision are shortened and capped, these are not."""
        implied = IMPLIED_BETAS.get(self.operation, frozenset())
        for beta in dict.fromkeys(betas):
            if beta not in implied and (denied := self._judge(decision, "betas", beta)) is not None:
                return denied
        for workspace in dict.fromkeys(workspaces):
            if (denied := self._workspace(decision, workspace)) is not None:
                return denied
        return None

    def _judge(self, decision: Decision, key: str, value: str, shown: Any = _shown) -> Decision | None:
        names = value_names(key, value)
        reason = _REASONS[key]
        if not self.role.grants.allows(key, names):
            return decision.denied(reason, message_for(reason, role=self.role.name, value=shown(value)))
        if not self.scope.grants.allows(key, names):
            return decision.denied(reason, message_for(reason, "route", value=shown(value)))
        return None

    def _workspace(self, decision: Decision, value: str) -> Decision | None:
        name = self.role.workspace or self.settings.default_workspace
        workspace = self.settings.workspaces.get(name) if name is not None else None
        if workspace is not None and workspace.id is not None and workspace.id == value:
            return None
        message = message_for("workspace_not_allowed", role=self.role.name, value=_shown(value))
        return decision.denied("workspace_not_allowed", message)

    def _record(self, decision: Decision, asked: Mapping[str, Iterable[str]], unknown: list[str]) -> Decision:
        """``decision`` carrying the values asked for (each shown shortened) and the unknown fields' names."""
        found = tuple((name, tuple(_shown(value) for value in values)) for name, values in asked.items() if values)
        if unknown:
            found += (("unknown_fields", tuple(_shown(name) for name in dict.fromkeys(unknown))),)
        if not found:
            return decision
        return decision.with_fields(merge_fields(decision.fields, found) if decision.fields else found)

    def _strict(self, decision: Decision) -> Decision:
        """A strict role refuses a request with a field the governor does not know."""
        unknown = dict(decision.fields).get("unknown_fields")
        if not unknown or not self.role.strict:
            return decision
        return decision.denied(
            "field_not_allowed", message_for("field_not_allowed", role=self.role.name, value=unknown[0])
        )
