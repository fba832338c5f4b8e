"""What a response says it used, in the shape prices read: :class:`BillableUsage` and its parts.

Read from the API's ``usage`` (a mapping or the SDK's object) and checked on the way in: every count an int
>= 0, a known tier and speed; a stream's later ``message_delta`` totals fold in with
:meth:`BillableUsage.updated`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Final, Literal, cast, get_args

__all__ = ["BillableUsage", "CacheCreation", "ServerToolUse", "ServiceTier", "Speed", "Ttl", "count_of"]

Ttl = Literal["5m", "1h"]
ServiceTier = Literal["standard", "priority", "batch"]
Speed = Literal["standard", "fast"]

_TIERS: Final = (None, *get_args(ServiceTier))
_SPEEDS: Final = (None, *get_args(Speed))


def count_of(owner: str, name: str, value: object) -> int:
    if type(value) is int and value >= 0:  # the common case, checked first (bool is not exactly int)
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{owner}.{name} must be a token or request count (an int >= 0), got {value!r}")
    return value


def _get(data: object, name: str) -> object:
    return data.get(name) if isinstance(data, Mapping) else getattr(data, name, None)


def _getter(data: object) -> Callable[[str], object]:
    """``_get`` bound to ``data``: whether it is a mapping is asked once, not per field."""
    if isinstance(data, Mapping):
        return cast("Callable[[str], object]", data.get)
    return lambda name: getattr(data, name, None)


def _optional_count(data: object, name: str) -> int | None:
    value = _get(data, name)
    return None if value is None else count_of("usage", name, value)


@dataclass(frozen=True, slots=True)
class CacheCreation:
    """``usage.cache_creation``: the cache writes by TTL."""

    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0

    def __post_init__(self) -> None:
        for spec in fields(self):
            count_of("cache_creation", spec.name, getattr(self, spec.name))


@dataclass(frozen=True, slots=True)
class ServerToolUse:
    """``usage.server_tool_use``: how many times each server tool ran (what it is billed by)."""

    web_search_requests: int = 0
    web_fetch_requests: int = 0

    def __post_init__(self) -> None:
        for spec in fields(self):
            count_of("server_tool_use", spec.name, getattr(self, spec.name))

    def uses(self) -> dict[str, int]:
        """Uses by tool name (``web_search``), the names the price table's ``server_tools`` use."""
        return {"web_search": self.web_search_requests, "web_fetch": self.web_fetch_requests}


@dataclass(frozen=True, slots=True)
class BillableUsage:
    """The ``usage`` of a response, field for field as ``anthropic.types.Usage`` has it, plus ``batch``.

    ``batch`` is a fact of the request the usage may not carry: the call went through the Message
    Batches API. ``service_tier="batch"`` in the usage means the same. Read a response's usage with
    :meth:`from_api`; fold a stream's later ``message_delta`` totals in with :meth:`updated`.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = None
    cache_creation: CacheCreation | None = None
    cache_read_input_tokens: int | None = None
    server_tool_use: ServerToolUse | None = None
    service_tier: ServiceTier | None = None
    speed: Speed | None = None
    inference_geo: str | None = None
    batch: bool = False

    def __post_init__(self) -> None:
        for name in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            value = getattr(self, name)
            if value is not None:
                count_of("usage", name, value)
        if self.service_tier not in _TIERS:
            raise ValueError(f"usage.service_tier must be one of {get_args(ServiceTier)}, got {self.service_tier!r}")
        if self.speed not in _SPEEDS:
            raise ValueError(f"usage.speed must be one of {get_args(Speed)}, got {self.speed!r}")

    @classmethod
    def from_api(cls, usage: object, *, batch: bool = False) -> BillableUsage:
        """From an SDK ``Usage`` / ``BetaUsage`` / ``MessageDeltaUsage`` or its JSON dict."""
        get = _getter(usage)
        split, tools, geo = get("cache_creation"), get("server_tool_use"), get("inference_geo")
        if geo is not None and not isinstance(geo, str):
            raise ValueError(f"usage.inference_geo must be a string, got {geo!r}")

        def count(name: str) -> int | None:
            value = get(name)
            return None if value is None else count_of("usage", name, value)

        return cls(
            input_tokens=count("input_tokens") or 0,
            output_tokens=count("output_tokens") or 0,
            cache_creation_input_tokens=count("cache_creation_input_tokens"),
            cache_creation=None if split is None else CacheCreation(**_counts(split, CacheCreation)),
            cache_read_input_tokens=count("cache_read_input_tokens"),
            server_tool_use=None if tools is None else ServerToolUse(**_counts(tools, ServerToolUse)),
            service_tier=cast("ServiceTier | None", get("service_tier")),  # checked in __post_init__
            speed=cast("Speed | None", get("speed")),
            inference_geo=geo,
            batch=batch,
        )

    def updated(self, delta: object) -> BillableUsage:
        """This usage with a later ``message_delta``'s totals, which are cumulative: each count the
        delta gives replaces ours; what it leaves out (the TTL split, the tier, the geo) stays."""

        def later(name: str, ours: int | None) -> int | None:
            theirs = _optional_count(delta, name)
            return ours if theirs is None else theirs

        tools = _get(delta, "server_tool_use")
        return replace(
            self,
            input_tokens=later("input_tokens", self.input_tokens) or 0,
            output_tokens=later("output_tokens", self.output_tokens) or 0,
            cache_creation_input_tokens=later("cache_creation_input_tokens", self.cache_creation_input_tokens),
            cache_read_input_tokens=later("cache_read_input_tokens", self.cache_read_input_tokens),
            server_tool_use=self.server_tool_use if tools is None else ServerToolUse(**_counts(tools, ServerToolUse)),
        )


def _counts(data: object, shape: type[CacheCreation] | type[ServerToolUse]) -> dict[str, int]:
    return {spec.name: _optional_count(data, spec.name) or 0 for spec in fields(shape)}
