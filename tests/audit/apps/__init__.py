"""The same small app in every framework claude_rbac integrates with; see :mod:`.common`."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, cast

from .common import Harness

Builder = Callable[[Mapping[str, Any]], Harness]
"""``build(rbac_options)``: the app with an RBAC made from these ``RBAC(...)`` keyword arguments."""

FRAMEWORKS = ("wsgi", "flask", "asgi", "starlette", "fastapi", "django")


def builder(framework: str) -> Builder:
    """The framework's ``build``, imported on demand: one framework's import never slows another's tests."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"no audited app for {framework!r}")
    module = importlib.import_module(f"{__name__}.{framework}_app")
    return cast(Builder, module.build)
