"""Metric labels from bounded sets only: the models the installed SDK knows, the policy's patterns and roles.

A caller can make up millions of model names and role strings; a metric series per name would grow without
bound in every exporter. Spans keep the exact values; metrics get these labels.
"""

from __future__ import annotations

from typing import Final

from ..policy import ModelMatcher, Policy, sdk_models

__all__ = ["KNOWN_MODELS", "OTHER", "MetricLabels"]

OTHER: Final = "_other"
"""The metric label of a model or role outside the bounded sets."""


KNOWN_MODELS: Final = sdk_models()


class MetricLabels:
    """Metric attribute values from bounded sets only, whatever names callers make up.

    A model is labelled with itself when the installed SDK knows it, else with the policy's pattern it
    matches (the most specific first: ``claude-haiku-*`` before ``claude-*``), else ``_other``; a role
    with itself when the policy has it, else ``_other``. The labels of 1,500 made-up model names that
    match ``claude-haiku-*`` are one series, not 1,500.
    """

    def __init__(self, policy: Policy | None = None) -> None:
        roles = policy.roles.values() if policy is not None else ()
        patterns = sorted({pattern for role in roles for pattern in role.models}, key=lambda p: (-len(p), p))
        self._roles = frozenset(policy.roles) if policy is not None else frozenset()
        self._patterns = [(pattern, ModelMatcher((pattern,))) for pattern in patterns]
        self._cache: dict[str, str] = {}

    def model(self, model: str | None) -> str:
        if not model:
            return ""
        if model in KNOWN_MODELS:
            return model
        label = self._cache.get(model)
        if label is None:
            label = next((pattern for pattern, matches in self._patterns if matches(model)), OTHER)
            if len(self._cache) >= 4096:
                self._cache.clear()
            self._cache[model] = label
        return label

    def role(self, role: str | None) -> str:
        if not role:
            return ""
        return role if role in self._roles else OTHER
