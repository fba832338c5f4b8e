"""The one :class:`~claude_rbac.RBAC` per process, built from the validated ``CLAUDE_RBAC`` setting.

Both the setting and the RBAC are cached, and dropped when a test changes the setting (``override_settings``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.core.signals import setting_changed  # type: ignore[import-untyped]

from ...rbac import RBAC
from .config import SETTING, Config, describe, read_api_key, read_config

__all__ = ["build_rbac", "config_and_problems", "get_config", "get_rbac", "on_reset"]


def build_rbac(config: Config) -> RBAC:
    api_key = None
    if not config.policy.settings.workspaces:  # workspaces name their own key sources
        api_key = read_api_key(config.api_key)
        if api_key is None:
            raise ImproperlyConfigured(f"claude_rbac: no Anthropic API key in {describe(config.api_key)}.")
    try:
        return RBAC(
            config.policy,
            storage=config.storage,
            storage_options=dict(config.storage_options) if config.storage_options is not None else None,
            key_prefix=config.key_prefix,
            api_key=api_key,
            base_url=config.base_url,
            # One startup warning for memory:// under many workers; silencing W001 silences it too.
            warn_multiprocess="claude_rbac.W001" not in getattr(settings, "SILENCED_SYSTEM_CHECKS", ()),
            **config.options,
        )
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"claude_rbac: settings.{SETTING} does not build: {exc}") from exc


# -- the per-process cache ----------------------------------------------------------------------

_lock = threading.Lock()
_read: tuple[Config | None, list[Any]] | None = None
_rbac: RBAC | None = None


def config_and_problems() -> tuple[Config | None, list[Any]]:
    global _read
    read = _read
    if read is None:
        with _lock:
            if _read is None:
                _read = read_config(getattr(settings, SETTING, None))
            read = _read
    return read


def get_config() -> Config:
    """The validated setting; ``ImproperlyConfigured`` naming every problem when it is not sound."""
    config, problems = config_and_problems()
    if config is None:
        raise ImproperlyConfigured("\n".join(f"{problem.id}: {problem.msg}" for problem in problems))
    return config


def get_rbac() -> RBAC:
    """The app's one :class:`~claude_rbac.RBAC`, built from ``settings.CLAUDE_RBAC`` on first use."""
    global _rbac
    rbac = _rbac
    if rbac is None:
        config = get_config()
        with _lock:
            if _rbac is None:
                _rbac = build_rbac(config)
            rbac = _rbac
    return rbac


WATCHED_SETTINGS = frozenset({SETTING, "MIDDLEWARE", "ROOT_URLCONF", "INSTALLED_APPS", "SILENCED_SYSTEM_CHECKS"})
_on_reset: list[Callable[[], None]] = []


def on_reset(callback: Callable[[], None]) -> None:
    """Run ``callback`` whenever a watched setting changes (other caches in this package register here)."""
    _on_reset.append(callback)


def reset(*, setting: str = SETTING, **kwargs: Any) -> None:
    global _read, _rbac
    if setting not in WATCHED_SETTINGS:
        return
    if setting == SETTING:
        with _lock:
            _read = None
            _rbac = None
    for callback in _on_reset:
        callback()


setting_changed.connect(reset, dispatch_uid="claude_rbac.integrations.django.runtime.reset")
