"""The values a policy or a request may hold for a model, a token count or a limit, and why one is wrong."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from ..errors import InvalidRequest
from ._patterns import MAX_MODEL_NAME

__all__ = ["LIMIT_CEILING", "MAX_TOKENS_CEILING", "check_max_tokens_value", "check_model_value", "limit_problem"]

MAX_TOKENS_CEILING: Final = 1_048_576
"""No request may ask for more output tokens than this, capped role or not."""
LIMIT_CEILING: Final = 10**12
"""The largest rpm, tpm or budget a policy may set."""


def limit_problem(value: object, ceiling: int = LIMIT_CEILING) -> str | None:
    """Why ``value`` is not a positive integer limit (never echoing a value that is not a number), or ``None``."""
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "float" if isinstance(value, Decimal) else type(value).__name__  # files' floats are read as Decimal
        return f"must be a positive integer, got {kind}"
    if value <= 0:
        return f"must be a positive integer, got {value}"
    if value > ceiling:
        return f"must be at most {ceiling}, got {value}"
    return None


def check_model_value(model: object) -> str:
    """``model`` as a request names it; :class:`InvalidRequest` (400) when it cannot be a model id."""
    if not isinstance(model, str):
        raise InvalidRequest(f"model must be a string, got {type(model).__name__}.")
    if not model or len(model) > MAX_MODEL_NAME:
        raise InvalidRequest(f"model must be a non-empty string of at most {MAX_MODEL_NAME} characters.")
    return model


def check_max_tokens_value(max_tokens: object) -> int:
    """``max_tokens`` as a request gives it; :class:`InvalidRequest` (400) for a string, float, bool, None or range."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise InvalidRequest(f"max_tokens must be an integer, got {type(max_tokens).__name__}.")
    if not 1 <= max_tokens <= MAX_TOKENS_CEILING:
        raise InvalidRequest(f"max_tokens must be between 1 and {MAX_TOKENS_CEILING}, got {max_tokens}.")
    return max_tokens
