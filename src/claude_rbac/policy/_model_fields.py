"""Every field of a request that names a model, found by walking the request, not by listing the tools.

A request can name a model in more places than ``model``: each ``fallbacks`` entry, a tool that calls a
model of its own (the advisor tool, ``{"type": "advisor_20260301", "model": ...}``), and whatever the API
adds next. :func:`model_fields` walks a request body and yields every key that names a model (``model``,
``models`` and any ``*_model``/``*_models``) at any depth, with the kind of place it is in:

* ``request``: the request's own ``model``;
* ``fallback``: a ``fallbacks`` entry's ``model`` (its ``max_tokens`` defaults to the request's);
* ``advisor``: an advisor tool's ``model`` (its ``max_tokens`` bounds each advisor call);
* ``unknown``: anywhere else. The governor cannot know what such a model costs or when it runs, so a
  request naming one is refused, whatever the model.

The walk skips the fields that hold data rather than settings (:data:`DATA_FIELDS`: the conversation, the
system prompt, metadata, JSON schemas and tool-input examples): a ``model`` key there is a value someone
wrote (a tool call's ``{"model": "Corolla"}``, a ``fallback`` block echoed from an earlier answer), not a
model that will run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = ["DATA_FIELDS", "ModelField", "ModelFieldKind", "model_fields"]

ModelFieldKind = Literal["request", "fallback", "advisor", "unknown"]

DATA_FIELDS: Final = frozenset({"messages", "system", "metadata", "input_schema", "input_examples", "schema"})
"""Fields whose contents are data (what was said, what a tool takes), never a model to call."""
_MODEL_KEY: Final = re.compile(r"(?:.*_)?models?", re.IGNORECASE)
_ADVISOR_TOOL: Final = re.compile(r"advisor_\d{8}")
_SHOWN_KEY: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MODEL_ENDINGS: Final = ("model", "odels")
_CONTAINERS: Final = (Mapping, list, tuple)
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ModelField:
    """One key of a request that names a model."""

    path: Path
    """Where it is: ``("tools", 2, "model")``."""
    owner: Mapping[str, Any]
    """The object holding the key (its ``max_tokens`` is the model's, for fallbacks and advisors)."""
    kind: ModelFieldKind

    @property
    def value(self) -> object:
        return self.owner[str(self.path[-1])]

    def describe(self) -> str:
        """The path for a message (``tools[2].model``); a key that is not a plain name shows as ``?``."""
        shown = ""
        for part in self.path:
            if isinstance(part, int):
                shown += f"[{part}]"
            else:
                name = part if _SHOWN_KEY.fullmatch(part) else "?"
                shown += f".{name}" if shown else name
        return shown


def _kind(path: Path, owner: Mapping[str, Any]) -> ModelFieldKind:
    if path == ("model",):
        return "request"
    if len(path) == 3 and path[0] == "fallbacks" and isinstance(path[1], int) and path[2] == "model":
        return "fallback"
    if len(path) == 3 and path[0] == "tools" and isinstance(path[1], int) and path[2] == "model":
        tool_type = owner.get("type")
        if isinstance(tool_type, str) and _ADVISOR_TOOL.fullmatch(tool_type):
            return "advisor"
    return "unknown"


def model_fields(body: Mapping[str, Any]) -> Iterator[ModelField]:
    """Every key of ``body`` that names a model, outside :data:`DATA_FIELDS`, in document order.

    Iterative (a deeply nested body cannot exhaust the stack) and linear in the size of what it walks;
    only containers are pushed, and a key is matched against the pattern only when it ends like one.
    """
    stack: list[tuple[Path, object]] = [((), body)]
    while stack:
        path, value = stack.pop()
        children: list[tuple[Path, object]] = []
        if type(value) is dict or isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str) or key in DATA_FIELDS:
                    continue
                if key[-5:].lower() in _MODEL_ENDINGS and item is not None and _MODEL_KEY.fullmatch(key):
                    yield ModelField((*path, key), value, _kind((*path, key), value))
                if _is_container(item):
                    children.append(((*path, key), item))
        elif isinstance(value, (list, tuple)):
            children = [((*path, index), item) for index, item in enumerate(value) if _is_container(item)]
        stack.extend(reversed(children))


def _is_container(value: object) -> bool:
    kind = type(value)
    if kind is dict or kind is list:  # what JSON bodies are made of: no ABC check on the hot path
        return True
    return kind not in _SCALARS and isinstance(value, _CONTAINERS)
