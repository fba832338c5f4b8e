"""What the policy makes of one SDK request (:class:`CallPlan`) and the estimate of its input tokens."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._model import Decision

__all__ = [
    "IMAGE_TOKENS",
    "MIN_THINKING_BUDGET",
    "NONSTREAMING_MAX_TOKENS",
    "NOT_ASKED",
    "CallPlan",
    "TokenEstimator",
    "estimate_input_tokens",
]

TokenEstimator = Callable[[Mapping[str, Any]], int]
IMAGE_TOKENS: Final = 1_600
MIN_THINKING_BUDGET: Final = 1_024
NONSTREAMING_MAX_TOKENS: Final = 21_333
"""The most ``max_tokens`` a non-streaming call may ask for: the anthropic SDK refuses more (it expects such
a call to take longer than its 10-minute default timeout: 3,600 s x max_tokens / 128,000 > 600 s)."""


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    """A deliberately high estimate of a request's input tokens, reserved before the call and settled after.

    Text counts one token per 3 UTF-8 bytes of its JSON (Claude averages about 3.5 characters a token,
    so this over-reserves and the settlement gives the rest back); an image counts 1,600 tokens (the
    most a 1.15-megapixel image costs) rather than its base64 size.
    """
    images = 0

    def strip(value: Any) -> Any:
        nonlocal images
        if isinstance(value, dict):
            source = value.get("source")
            if value.get("type") == "image" and isinstance(source, dict):
                images += 1
                return None
            return {key: strip(item) for key, item in value.items()}
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    prompt = {key: body.get(key) for key in ("system", "messages", "tools", "tool_choice") if key in body}
    text = json.dumps(prompt, ensure_ascii=False, default=str)
    if '"image"' in text:  # only then can a block be an image (the common prompt is dumped once, not copied first)
        text = json.dumps(strip(prompt), ensure_ascii=False, default=str)
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    return math.ceil(size / 3) + images * IMAGE_TOKENS


NOT_ASKED: Final[Any] = object()
"""A call that asks for no max_tokens (``count_tokens``): only its model is decided."""


@dataclass(slots=True)
class CallPlan:
    """The policy's answer for one SDK request."""

    operation: str | None
    decision: Decision
    body: dict[str, Any] | None = None
    """The body to send instead, when the policy changed it (clamped max_tokens); else ``None``."""
    tokens: int = 0
    """Tokens to reserve: the input estimate plus the effective max_tokens (summed over a batch)."""
    spend: int = 0
    """Micro-dollars to reserve: the worst case of what the call can cost (summed over a batch); 0 when the
    role has no spend limit."""
    counts_rpm: bool = True
    requests: int = 1
    """How many requests this counts as against RPM: a batch counts each of its items."""
    batch_id: str | None = None
    """The batch a retrieve/results/cancel names."""
