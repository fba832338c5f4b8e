"""System checks on the deployment around the setting: ``claude_rbac.W001`` (limits counted per process),
``W002`` (no API key where the settings say) and ``W008`` (error reports that would show the setting)."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings  # type: ignore[import-untyped]
from django.core import checks  # type: ignore[import-untyped]
from django.utils.module_loading import import_string  # type: ignore[import-untyped]

from ...policy import KeySource
from ...quota import WORKER_SOURCES, find_workers
from .config import SETTING, describe
from .reporting import hides_our_setting
from .runtime import config_and_problems

__all__ = ["check_api_key", "check_error_reports", "check_storage"]

OUR_FILTER = "claude_rbac.integrations.django.ExceptionReporterFilter"


def check_storage(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    config = config_and_problems()[0]
    if config is None or not config.storage.removeprefix("async+").startswith("memory://"):
        return []
    server, processes, source = find_workers(config_dir=os.getcwd())
    if processes == 1:
        return []
    under = f" under {server}" if server else ""
    if processes is None:
        runs = f"sets its worker count at run time ({source}){under}, so it may run several processes"
        times = "the number of processes"
    else:
        runs = f"runs {processes} worker processes{under} ({source})"
        times = f"up to {processes}"
    return [
        checks.Warning(
            f"{SETTING}['STORAGE'] is memory:// but this deployment {runs}. Each process keeps its own counters, "
            f"so every rpm/tpm/budget in the policy is multiplied by {times}.",
            hint="Use a shared storage such as 'redis://127.0.0.1:6379/0' (pip install 'claude-rbac[redis]'), "
            "or silence claude_rbac.W001 if per-process limits are what you want. This check reads "
            f"{WORKER_SOURCES} (from the working directory); it cannot see replicas started by a process manager.",
            id="claude_rbac.W001",
        )
    ]


def check_api_key(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    config = config_and_problems()[0]
    if config is None:
        return []
    workspaces = config.policy.settings.workspaces
    if workspaces:
        service = config.options.get("service")
        sources: list[tuple[str, object]] = [
            (f"workspace {name!r}", ws.source_for(service)) for name, ws in workspaces.items()
        ]
    else:
        sources = [(f"{SETTING}['API_KEY']", config.api_key)]
    problems = []
    for owner, source in sources:
        if isinstance(source, KeySource) and source.read()[0] is None:
            problems.append(
                checks.Warning(
                    f"No Anthropic API key for {owner}: {describe(source)} is missing or empty; the app won't start.",
                    hint="Set it in the environment the server runs in.",
                    id="claude_rbac.W002",
                )
            )
    return problems


def check_error_reports(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """W008: the ``DEBUG`` 500 page or the e-mails to ``ADMINS`` would print ``CLAUDE_RBAC`` (the policy)."""
    if not (settings.DEBUG or getattr(settings, "ADMINS", None)) or not hasattr(settings, SETTING):
        return []
    try:
        reporter_filter = import_string(settings.DEFAULT_EXCEPTION_REPORTER_FILTER)()
    except Exception:
        return []  # Django reports a filter that does not import when it first needs it
    if hides_our_setting(reporter_filter):
        return []
    shown = "The DEBUG error page" if settings.DEBUG else "The error e-mails to ADMINS"
    return [
        checks.Warning(
            f"{shown} would show settings.{SETTING}: the whole policy when POLICY is a dict, and "
            "the storage URI with any password in it (Django hides only settings named like API, KEY, SECRET...).",
            hint=f"Set DEFAULT_EXCEPTION_REPORTER_FILTER = {OUR_FILTER!r} (or add '{SETTING}' to the "
            "hidden_settings of your own filter).",
            id="claude_rbac.W008",
        )
    ]
