"""Which policy made a decision: a revision per loaded policy, and the canonical document it is derived from.

A policy file may name its own revision (``revision = "2025-07-01"``, a git sha, a ticket); otherwise the
revision is the first 12 hex digits of the SHA-256 of the canonical compiled document: every role as
compiled (inherited values included) and every policy-wide setting, as JSON with sorted keys. So the
revision changes exactly when what the policy says changes: comments, key order, whitespace and the file
format (TOML, YAML, JSON) do not change it, and every worker that loaded the same policy reports the same one.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["REVISION_PATTERN", "canonical", "content_revision", "revision_problem"]

REVISION_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+/@-]{0,63}")
"""A declared revision: 1-64 characters, letters, digits and ``_.:+/@-`` (a tag, a date, a git sha...)."""
REVISION_DIGITS: Final = 12


def revision_problem(value: object) -> str | None:
    """Why ``value`` cannot be a declared ``revision``, or ``None``. Never echoes the value (it could be a key)."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not REVISION_PATTERN.fullmatch(value):
        return "must be 1-64 characters: letters, digits and _.:+/@- (starting with a letter or digit)"
    return None


def canonical(value: object) -> Any:
    """``value`` as plain JSON data: a dataclass by its compared fields, sets sorted, mappings by key.

    Fields declared ``compare=False`` (compiled matchers, bookkeeping) are left out: they are derived
    from the fields that are kept. Anything else is its ``repr``, so a new kind of setting still counts.
    """
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, enum.Enum):
        return canonical(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: canonical(getattr(value, item.name)) for item in dataclasses.fields(value) if item.compare}
    if isinstance(value, Mapping):
        return {str(key): canonical(item) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((canonical(item) for item in value), key=_sort_key)
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    return repr(value)


def _sort_key(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def content_revision(document: Mapping[str, Any]) -> str:
    """The short content hash of a canonical document (see the module docstring)."""
    text = json.dumps(canonical(document), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:REVISION_DIGITS]
