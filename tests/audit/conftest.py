"""Fixtures of the audit-trail tests: the exporters a collector would read, and the same app in every framework."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from claude_rbac.testing import FakeClaude, InMemoryMetrics

from .apps import FRAMEWORKS, builder
from .apps.common import Harness
from .trail import AuditTrail

POLICY: dict[str, Any] = {
    "version": 1,
    "on_excess": "clamp",
    "roles": {
        "viewer": {"allowed": False},
        "user": {"inherits": ["viewer"], "models": ["claude-haiku-*"], "max_tokens": 512, "rpm": 2},
        "power": {"inherits": ["user"], "models": ["claude-sonnet-*", "claude-opus-*"], "max_tokens": 4096},
    },
}


@pytest.fixture
def trail(
    span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetrics, caplog: pytest.LogCaptureFixture
) -> Iterator[AuditTrail]:
    caplog.set_level(logging.INFO)  # every logger, at the level production runs
    audit = AuditTrail.start(span_exporter, metric_reader, caplog)
    yield audit
    audit.logger_provider.shutdown()


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_app(
    framework: str, trail: AuditTrail, fake_claude: FakeClaude, key_prefix: str
) -> Iterator[Callable[..., Harness]]:
    """``make_app(**rbac_overrides)``: the test app of ``framework``, auditing into ``trail``, closed afterwards."""
    made: list[Harness] = []

    def make(**overrides: Any) -> Harness:
        options = {
            "policy": POLICY,
            "storage": "memory://",
            "key_prefix": key_prefix,
            "base_url": fake_claude.url,
            **trail.rbac_options(),
            **overrides,
        }
        harness = builder(framework)(options)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()
