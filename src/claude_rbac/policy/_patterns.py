"""Model-name patterns: exact names and globs, matched byte for byte.

A ``*`` matches a run of the characters model ids are made of (lower-case ASCII letters, digits and
``-._:@/``), and ``?`` one of them. So ``claude-haiku-*`` admits ``claude-haiku-4-5`` and the next
haiku, but never ``Claude-Haiku-4-5``, a trailing space or a homoglyph: nothing is case-folded or
Unicode-normalised.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable
from functools import cache
from typing import ClassVar, Literal

from ._workspaces import redact

__all__ = ["MAX_MODEL_NAME", "GlobMatcher", "ModelMatcher", "sdk_models", "describe_patterns", "pattern_problem"]

MAX_MODEL_NAME = 256
_PATTERN_CHARS = re.compile(r"[a-z0-9._:@/*?-]+")
_ID_CHAR = "[a-z0-9._:@/-]"
_CACHE_SIZE = 4096


def pattern_problem(pattern: object) -> str | None:
    """Why ``pattern`` is not a valid model pattern, or ``None`` when it is."""
    if not isinstance(pattern, str):
        return f"a model pattern must be a string, got {type(pattern).__name__}"
    if not pattern:
        return "a model pattern must not be empty"
    if len(pattern) > MAX_MODEL_NAME:
        return f"a model pattern must be at most {MAX_MODEL_NAME} characters"
    if not _PATTERN_CHARS.fullmatch(pattern):
        return (
            f"model pattern {redact(pattern)} can never match a model id: model ids are lower-case letters,"
            " digits and -._:@/ (plus the wildcards * and ?)"
        )
    return None


def describe_patterns(patterns: Iterable[str]) -> str:
    """``claude-opus-*`` or ``claude-opus-* or claude-sonnet-4-6``: for messages that name a route's models."""
    return " or ".join(patterns)


def _translate(pattern: str) -> str:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(f"{_ID_CHAR}*")
        elif char == "?":
            parts.append(_ID_CHAR)
        else:
            parts.append(re.escape(char))
    return "".join(parts)


class GlobMatcher:
    """Answers "does this name match one of the patterns?": a set lookup for exact names, one regex for the globs.

    A bounded memo keeps the per-call check at a dict lookup; it is cleared when full, so names an attacker
    makes up cannot grow it without bound. Subclasses say how a glob translates and how long a name may be.
    """

    __slots__ = ("_cache", "_exact", "_regex", "patterns")
    max_length: ClassVar[int]

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: tuple[str, ...] = tuple(dict.fromkeys(patterns))
        self._exact = frozenset(p for p in self.patterns if "*" not in p and "?" not in p)
        globs = [p for p in self.patterns if p not in self._exact]
        self._regex = re.compile("|".join(f"(?:{self.translate(p)})" for p in globs)) if globs else None
        self._cache: dict[str, bool] = {}

    @staticmethod
    def translate(pattern: str) -> str:
        raise NotImplementedError

    def __call__(self, name: str) -> bool:
        hit = self._cache.get(name)
        if hit is not None:
            return hit
        matched = name in self._exact or (
            self._regex is not None and len(name) <= self.max_length and self._regex.fullmatch(name) is not None
        )
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[name] = matched
        return matched


class ModelMatcher(GlobMatcher):
    """Answers "does this model name match one of the patterns?" (``*`` and ``?`` stay within model-id characters)."""

    __slots__ = ()
    max_length = MAX_MODEL_NAME
    translate = staticmethod(_translate)

    def __repr__(self) -> str:
        return f"ModelMatcher({list(self.patterns)!r})"


@cache
def sdk_models() -> frozenset[str]:
    """The model ids the installed anthropic SDK names (the literals of ``anthropic.types.Model``)."""
    import anthropic  # only when asked: reading a policy needs no SDK

    known: set[str] = set()
    for arg in typing.get_args(anthropic.types.Model):
        if typing.get_origin(arg) is Literal:
            known.update(value for value in typing.get_args(arg) if isinstance(value, str))
    return frozenset(known)
