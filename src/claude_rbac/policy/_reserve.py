"""The dollars a call reserves before it is sent: the worst case of what it can cost (see ``docs/spend.md``).

For each model a request can run (its own and each ``fallbacks`` entry: one of them runs) the worst case of
:func:`~._costs.worst_case` at that model's price (priced in integers by :func:`~._costs.worst_case_micro`):
the prompt estimate as if every token were written to the cache at the dearest TTL the request's
``cache_control`` breakpoints name (or as plain input when that is dearer), its ``max_tokens`` at the output
rate, each server tool at its ``max_uses``; the dearest of those, plus each advisor tool's worst case on top
(an advisor call runs besides). The request's ``speed`` and ``inference_geo`` are priced as asked (no
``inference_geo``: the dearest the model has); ``service_tier`` ``auto`` is reserved at standard rates (no
Priority Tier price is published: a call that settles on it is kept at its reservation). A batch item is
reserved at the batch rates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from ._billable import Speed, Ttl
from ._costs import worst_case_micro
from ._prices import MissingPrice, PriceTable

__all__ = ["DEFAULT_TOOL_USES", "cache_ttl", "reserve", "tool_uses"]

DEFAULT_TOOL_USES: Final = 10
"""Uses reserved for a server tool whose definition sets no ``max_uses`` (settled at what it really ran)."""
_TOOL_NAMES: Final = (("web_search_", "web_search"), ("web_fetch_", "web_fetch"))
_PROMPT_FIELDS: Final = ("tools", "system", "messages")
_BREAKPOINT_KEYS: Final = frozenset({"type", "ttl"})


def cache_ttl(body: Mapping[str, Any]) -> Ttl | None:
    """The dearest TTL among the request's ``cache_control`` breakpoints (``None``: it has none)."""
    found: Ttl | None = None
    stack: list[Any] = [body.get("cache_control"), *(body.get(name) for name in _PROMPT_FIELDS)]
    while stack:
        value = stack.pop()
        if value is None or type(value) is str:  # most of a prompt: its text, skipped at once
            continue
        if isinstance(value, Mapping):
            if value.get("type") == "ephemeral" and value.keys() <= _BREAKPOINT_KEYS:
                if value.get("ttl") == "1h":
                    return "1h"  # the dearest there is
                found = "5m"
                continue
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return found


def tool_uses(body: Mapping[str, Any]) -> dict[str, int]:
    """The most uses of each priced server tool the request grants (``max_uses``, else the default)."""
    uses: dict[str, int] = {}
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if not isinstance(kind, str):
            continue
        for prefix, name in _TOOL_NAMES:
            if kind.startswith(prefix):
                most = tool.get("max_uses")
                count = most if isinstance(most, int) and not isinstance(most, bool) and most >= 0 else None
                uses[name] = uses.get(name, 0) + (DEFAULT_TOOL_USES if count is None else count)
    return uses


def reserve(
    body: Mapping[str, Any],
    prices: PriceTable,
    *,
    input_tokens: int,
    runs: Sequence[tuple[str, int]],
    besides: Iterable[tuple[str, int]] = (),
    batch: bool = False,
) -> int:
    """Micro-dollars to reserve for one request: the dearest of ``runs`` (model, max_tokens), plus ``besides``.

    Raises :class:`~._prices.MissingPrice` when a model (or a fact the request asks for: fast mode, a geo)
    has no price.
    """
    speed: Speed = "fast" if body.get("speed") == "fast" else "standard"
    geo = body.get("inference_geo") if isinstance(body.get("inference_geo"), str) else None
    ttl, uses = cache_ttl(body), tool_uses(body)

    def most(model: str, max_tokens: int, with_tools: bool) -> int:
        price = prices.price_for(model)
        if price is None:
            raise MissingPrice(f"{model} has no price in the price table")
        return worst_case_micro(
            price,
            input_tokens=input_tokens,
            max_tokens=max_tokens,
            cache_ttl=ttl,
            tool_uses=uses if with_tools else None,
            batch=batch,
            speed=speed,
            inference_geo=geo,
            tools=prices.tools,
        )

    return max(most(model, tokens, True) for model, tokens in runs) + sum(
        most(model, tokens, False) for model, tokens in besides
    )
