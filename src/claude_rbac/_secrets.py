"""What an Anthropic API key looks like, and how to name one without showing it.

The lowest layer: :mod:`claude_rbac.errors` hides keys in every message it builds, and the policy
reports keys by :func:`fingerprint`. Nothing here reads a key; it only recognises and names one.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

__all__ = ["KEY_LITERAL", "fingerprint", "hide_keys", "redact"]

KEY_LITERAL: Final = re.compile(r"sk-ant-[a-z]+[0-9]*-[A-Za-z0-9_-]{16,}")
"""What an Anthropic key looks like (a fingerprint, ``sk-ant-api03...AbCd#1a2b3c4d``, does not)."""


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


def hide_keys(text: str) -> str:
    """``text`` with anything that looks like an API key replaced by its fingerprint."""
    if "sk-ant-" not in text:
        return text
    return KEY_LITERAL.sub(lambda match: fingerprint(match.group(0)), text)


def redact(value: object) -> str:
    """``repr(value)`` for a message, with anything that looks like an API key replaced by its fingerprint."""
    return hide_keys(repr(value))
