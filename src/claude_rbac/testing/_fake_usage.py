"""The usage FakeClaude answers with: estimated from the request, a simulated prompt cache, scripts.

The shape is the API's (the SDK's ``Usage`` and, for streams, ``message_start`` plus the final
``message_delta``). The figures are plausible rather than real: a prompt counts one token per four
characters of its text and tool definitions, and the prompt cache is an exact-prefix cache with
no minimum length (see :class:`PromptCache`).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "CacheUse",
    "PromptCache",
    "apply_override",
    "computed_usage",
    "delta_usage",
    "max_tokens",
    "prompt_tokens",
    "server_tool_use",
    "service_tier",
    "start_usage",
    "text_of",
]

TTL_SECONDS: Final = {"5m": 300.0, "1h": 3600.0}
ADVISOR_OUTPUT_TOKENS: Final = 600
"""What one advisor consultation writes when its tool sets no ``max_tokens`` (the docs say 400 to 700)."""

_START_ONLY: Final = ("cache_creation", "service_tier", "inference_geo", "speed")
_INPUT_SIDE: Final = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
_DELTA_ONLY: Final = ("server_tool_use", "output_tokens_details", "iterations", "fallback_credit")
_ZERO_FILLED: Final = {
    "cache_creation": ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"),
    "server_tool_use": ("web_search_requests", "web_fetch_requests"),
}


@dataclass(frozen=True)
class CacheUse:
    read: int = 0
    write_5m: int = 0
    write_1h: int = 0

    @property
    def written(self) -> int:
        return self.write_5m + self.write_1h


def text_of(value: Any) -> str:
    """The text a prompt part carries: strings, ``text``/``content`` fields, and tool call inputs."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(text_of(item) for item in value)
    if isinstance(value, Mapping):
        if str(value.get("type", "")).endswith("tool_use") and "input" in value:
            return json.dumps(value["input"], sort_keys=True)
        return " ".join(text_of(value[key]) for key in ("text", "content") if key in value)
    return ""


def _without_cache_control(part: Any) -> Any:
    return {k: v for k, v in part.items() if k != "cache_control"} if isinstance(part, Mapping) else part


def _tool_text(tool: Any) -> str:
    return json.dumps(_without_cache_control(tool), sort_keys=True, separators=(",", ":"), default=str)


def _tools(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    tools = body.get("tools")
    return [tool for tool in tools if isinstance(tool, Mapping)] if isinstance(tools, list) else []


def max_tokens(body: Mapping[str, Any]) -> int:
    """The request's ``max_tokens`` (1 when it is missing or not a number: FakeClaude rejects nothing)."""
    value = body.get("max_tokens", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 1


def prompt_tokens(body: Mapping[str, Any]) -> int:
    """The whole prompt's tokens (cached or not): ``count_tokens`` answers this."""
    text = text_of(body.get("system", "")) + " " + text_of(body.get("messages", []))
    chars = len(text.strip()) + sum(len(_tool_text(tool)) for tool in _tools(body))
    return max(1, math.ceil(chars / 4))


def server_tool_use(body: Mapping[str, Any]) -> dict[str, int] | None:
    """One web search and one web fetch for a request that carries those tools (``max_uses: 0`` none)."""
    counts = {"web_search_requests": 0, "web_fetch_requests": 0}
    for tool in _tools(body):
        kind = str(tool.get("type", ""))
        for prefix, key in (("web_search_", "web_search_requests"), ("web_fetch_", "web_fetch_requests")):
            if kind.startswith(prefix) and tool.get("max_uses") != 0:
                counts[key] = 1
    return counts if any(counts.values()) else None


def advisor_iterations(body: Mapping[str, Any], usage: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The beta ``usage.iterations`` of a request that grants the advisor tool: the executor, then the advisor.

    The top-level figures stay the executor's; the advisor's own tokens (billed at its model's rates)
    are only in its ``advisor_message`` iteration. It reads the whole prompt, uncached.
    """
    advisor = next((t for t in _tools(body) if str(t.get("type", "")).startswith("advisor_")), None)
    if advisor is None:
        return None
    cap = advisor.get("max_tokens")
    executor = {key: usage.get(key, 0) for key in (*_INPUT_SIDE, "output_tokens")}
    if "cache_creation" in usage:
        executor["cache_creation"] = usage["cache_creation"]
    return [
        {"type": "message", "model": body.get("model"), **executor},
        {
            "type": "advisor_message",
            "model": advisor.get("model"),
            "input_tokens": prompt_tokens(body),
            "output_tokens": min(ADVISOR_OUTPUT_TOKENS, cap) if isinstance(cap, int) else ADVISOR_OUTPUT_TOKENS,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    ]


def service_tier(body: Mapping[str, Any], *, batch: bool, priority: bool) -> str:
    """``batch`` in a batch; ``standard_only`` is standard; ``auto`` (the default) is priority when the org has it."""
    asked = body.get("service_tier")
    if batch:
        return "batch"
    if asked in ("standard", "priority"):
        return str(asked)
    return "priority" if priority and asked != "standard_only" else "standard"


def computed_usage(
    body: Mapping[str, Any], cache: CacheUse, *, output_tokens: int, tier: str, cache_is_extra: bool = False
) -> dict[str, Any]:
    """The usage of an answer nobody scripted: the prompt estimate split by the cache, and the echoes.

    ``cache_is_extra`` adds the cache figures on top of the whole prompt (FakeClaude's fixed cache
    figures) instead of taking them out of it (the simulated cache).
    """
    total = prompt_tokens(body)
    usage: dict[str, Any] = {
        "input_tokens": total if cache_is_extra else max(0, total - cache.read - cache.written),
        "cache_creation_input_tokens": cache.written,
        "cache_read_input_tokens": cache.read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache.write_5m, "ephemeral_1h_input_tokens": cache.write_1h},
        "output_tokens": max(0, min(max_tokens(body), output_tokens)),
        "service_tier": tier,
        "inference_geo": body.get("inference_geo") or "global",
    }
    if body.get("speed") is not None:
        usage["speed"] = body["speed"]
    tools = server_tool_use(body)
    if tools is not None:
        usage["server_tool_use"] = tools
    iterations = advisor_iterations(body, usage)
    if iterations is not None:
        usage["iterations"] = iterations
    return usage


def apply_override(usage: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``usage`` with ``override``'s keys in their place; a key set to ``None`` leaves the answer.

    Kept consistent: a cache write total without its TTL breakdown is all 5-minute writes, a
    breakdown without a total sets the total, and the breakdown and server tool counts get their
    missing fields as zeros (the SDK's types require them).
    """
    result = {**usage, **override}
    if "cache_creation_input_tokens" in override and "cache_creation" not in override:
        result["cache_creation"] = {
            "ephemeral_5m_input_tokens": override["cache_creation_input_tokens"] or 0,
            "ephemeral_1h_input_tokens": 0,
        }
    elif isinstance(override.get("cache_creation"), Mapping) and "cache_creation_input_tokens" not in override:
        result["cache_creation_input_tokens"] = sum(int(v or 0) for v in override["cache_creation"].values())
    for key, fields in _ZERO_FILLED.items():
        if isinstance(result.get(key), Mapping):
            result[key] = {**dict.fromkeys(fields, 0), **result[key]}
    return {key: value for key, value in result.items() if value is not None}


def start_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """The usage of a stream's ``message_start``: the input side, one output token so far."""
    start = {key: value for key, value in usage.items() if key not in _DELTA_ONLY}
    start["output_tokens"] = min(1, int(usage.get("output_tokens", 0)))
    return start


def delta_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """The usage of a stream's final ``message_delta``: cumulative, as the SDK's ``MessageDeltaUsage``.

    A plain turn's delta carries ``output_tokens`` only (the API's basic streaming example); a turn
    that read or wrote the cache or used server tools repeats the cumulative input-side figures too.
    """
    delta = {"output_tokens": usage.get("output_tokens", 0)}
    extras = {key: usage[key] for key in _DELTA_ONLY if key in usage}
    cumulative = extras or usage.get("cache_creation_input_tokens") or usage.get("cache_read_input_tokens")
    if cumulative:
        delta.update({key: usage[key] for key in _INPUT_SIDE if key in usage})
    return {**delta, **extras}


@dataclass(frozen=True)
class _Block:
    chars: int
    key: str
    ttl: str | None


def _ttl(cache_control: Any) -> str | None:
    if not isinstance(cache_control, Mapping):
        return None
    return "1h" if cache_control.get("ttl") == "1h" else "5m"


def _parts(body: Mapping[str, Any]) -> Iterable[tuple[Any, int]]:
    """Every cacheable part of the prompt in the API's cache order (tools, system, messages), with its size."""
    for tool in _tools(body):
        yield tool, len(_tool_text(tool))
    system = body.get("system")
    for part in system if isinstance(system, list) else [system] if system else []:
        yield part, len(text_of(part))
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        for part in content if isinstance(content, list) else [content]:
            yield part, len(text_of(part))


def _blocks(body: Mapping[str, Any]) -> list[_Block]:
    running = hashlib.sha256(str(body.get("model")).encode())
    blocks = []
    for part, chars in _parts(body):
        running.update(json.dumps(_without_cache_control(part), sort_keys=True, default=str).encode())
        cache_control = part.get("cache_control") if isinstance(part, Mapping) else None
        blocks.append(_Block(chars, running.hexdigest(), _ttl(cache_control)))
    top = _ttl(body.get("cache_control"))
    if top is not None and blocks and blocks[-1].ttl is None:
        blocks[-1] = _Block(blocks[-1].chars, blocks[-1].key, top)
    return blocks


class PromptCache:
    """An exact-prefix prompt cache, shared by every request to one FakeClaude.

    A block with ``cache_control`` (or the last block, for a top-level ``cache_control``) is a
    breakpoint. The longest prefix of the prompt that an earlier request wrote, and that has not
    expired, is read; the rest up to the last breakpoint is written, each stretch at the TTL of the
    breakpoint that ends it. Entries live 5 minutes or 1 hour from their last use, per model. There
    is no minimum cacheable length, so short test prompts cache too.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, str]] = {}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def use(self, body: Mapping[str, Any], total_tokens: int) -> CacheUse:
        if body.get("cache_control") is None and not any(
            isinstance(part, Mapping) and part.get("cache_control") is not None for part, _ in _parts(body)
        ):
            return CacheUse()  # nothing to cache: skip hashing the prompt
        blocks = _blocks(body)
        breakpoints = [i for i, block in enumerate(blocks) if block.ttl is not None]
        if not breakpoints:
            return CacheUse()
        ends, chars = [], 0
        for block in blocks:
            chars += block.chars
            ends.append(min(total_tokens, chars // 4))
        now = self._clock()
        with self._lock:
            self._entries = {key: entry for key, entry in self._entries.items() if entry[0] > now}
            hit = next((i for i in range(breakpoints[-1], -1, -1) if blocks[i].key in self._entries), None)
            read = 0 if hit is None else ends[hit]
            if hit is not None:
                ttl = self._entries[blocks[hit].key][1]
                self._entries[blocks[hit].key] = (now + TTL_SECONDS[ttl], ttl)
            written = {"5m": 0, "1h": 0}
            done = read
            for i in breakpoints:
                ttl = blocks[i].ttl or "5m"
                if hit is None or i > hit:
                    written[ttl] += max(0, ends[i] - done)
                    done = max(done, ends[i])
                self._entries[blocks[i].key] = (now + TTL_SECONDS[ttl], ttl)
        return CacheUse(read, written["5m"], written["1h"])
