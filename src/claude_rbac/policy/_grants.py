"""The grants that govern a request's cost, reach and data-residency fields: the policy keys, their defaults,
how a value matches a grant, and which family a tool type belongs to.

Each key is a list of exact values or patterns: ``*`` matches any run of printable ASCII characters (a
space never), ``?`` one of them; nothing is case-folded. A tool matches by its type (``web_search_20250305``,
so ``web_search_*`` grants every version) or by its family (``web_search`` grants the family: every dated
type of it, including the next one). A client tool (no ``type``, or ``"custom"``) is the family ``custom``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from ._patterns import GlobMatcher
from ._workspaces import redact

__all__ = [
    "DEFAULT_GRANTS",
    "GRANT_KEYS",
    "TOOL_FAMILIES",
    "GrantMatchers",
    "ValueMatcher",
    "grant_problem",
    "tool_family",
    "value_names",
]

GRANT_KEYS: Final = ("tools", "mcp_servers", "service_tiers", "speeds", "inference_geos", "betas")
"""The role keys (and route-scope keywords) that grant request-field values."""
DEFAULT_GRANTS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "tools": ("custom",),
        "mcp_servers": (),
        "service_tiers": ("auto",),
        "speeds": ("standard",),
        "inference_geos": (),
        "betas": (),
    }
)
"""What a role that does not write a key has: client tools, the API's default tier and standard speed only."""
TOOL_FAMILIES: Final = (
    "custom",
    "web_search",
    "web_fetch",
    "code_execution",
    "bash",
    "text_editor",
    "computer",
    "browser",
    "memory",
    "tool_search",
    "advisor",
    "mcp_toolset",
)
"""The tool families a grant can name; a type outside them is its own family, without its ``_YYYYMMDD`` date."""
MAX_VALUE: Final = 2048
_FAMILIES_LONGEST_FIRST: Final = tuple(sorted(TOOL_FAMILIES, key=len, reverse=True))
_DATED: Final = re.compile(r"(.+?)_\d{8}")
_VALUE_CHARS: Final = re.compile(r"[!-~]+")
_CACHE_SIZE: Final = 4096
_FAMILY_CACHE: dict[str, str] = {"custom": "custom"}


def tool_family(tool_type: str) -> str:
    """``web_search`` for ``web_search_20250305``, ``computer`` for ``computer_toolset_20260801``."""
    family = _FAMILY_CACHE.get(tool_type)
    if family is None:
        family = next((f for f in _FAMILIES_LONGEST_FIRST if tool_type == f or tool_type.startswith(f"{f}_")), None)
        if family is None:
            dated = _DATED.fullmatch(tool_type)
            family = dated.group(1) if dated is not None else tool_type
        if len(_FAMILY_CACHE) >= _CACHE_SIZE:  # tool types come from requests: keep the memo bounded
            _FAMILY_CACHE.clear()
        _FAMILY_CACHE[tool_type] = family
    return family


def value_names(key: str, value: str) -> tuple[str, ...]:
    """The names a grant of ``key`` may match ``value`` by: a tool's type and family, else the value itself."""
    if key == "tools":
        family = tool_family(value)
        return (value,) if family == value else (value, family)
    return (value,)


def grant_problem(key: str, pattern: object) -> str | None:
    """Why ``pattern`` cannot be an entry of ``key``, or ``None``. Never echoes a value that could be a key."""
    if not isinstance(pattern, str):
        return f"must contain strings, got {type(pattern).__name__}"
    if not pattern or len(pattern) > MAX_VALUE:
        return f"entries must be 1-{MAX_VALUE} characters"
    if not _VALUE_CHARS.fullmatch(pattern):
        return f"entry {redact(pattern)} can never match: values are printable ASCII without spaces"
    if key == "betas" and "," in pattern:
        return f"entry {redact(pattern)} holds a comma: list each beta on its own"
    return None


def _translate(pattern: str) -> str:
    return "".join("[!-~]*" if char == "*" else "[!-~]" if char == "?" else re.escape(char) for char in pattern)


class ValueMatcher(GlobMatcher):
    """Answers "does this value match one of the patterns?" (``*`` and ``?`` stay within printable ASCII)."""

    __slots__ = ()
    max_length = MAX_VALUE
    translate = staticmethod(_translate)

    def any(self, names: Iterable[str]) -> bool:
        return any(self(name) for name in names)

    def __repr__(self) -> str:
        return f"ValueMatcher({list(self.patterns)!r})"


class GrantMatchers:
    """Per grant key, the matchers a value must satisfy every one of: a role's grant has one, a route scope one
    per guard that narrows the key (scopes intersect). A key without matchers is not narrowed."""

    __slots__ = ("_by_key",)

    def __init__(self, sets: Iterable[tuple[str, tuple[str, ...]]]) -> None:
        by_key: dict[str, list[ValueMatcher]] = {}
        for key, patterns in sets:
            by_key.setdefault(key, []).append(ValueMatcher(patterns))
        self._by_key = {key: tuple(matchers) for key, matchers in by_key.items()}

    def narrows(self, key: str) -> bool:
        return key in self._by_key

    def allows(self, key: str, names: tuple[str, ...]) -> bool:
        matchers = self._by_key.get(key)
        return matchers is None or all(matcher.any(names) for matcher in matchers)
