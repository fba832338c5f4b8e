"""pytest fixtures for claude_rbac (registered through the ``pytest11`` entry point).

* ``fake_claude``: a running :class:`~claude_rbac.testing.FakeClaude`, stopped after the test.
* ``span_exporter``: the in-memory exporter of the global OTel SDK tracer provider, cleared per test.
* ``metric_reader``: an :class:`~claude_rbac.testing.InMemoryMetrics` (pass ``.provider`` to ``RBAC``).

The fixtures need ``opentelemetry-sdk`` only when they are used.

It also collects policy test suites: every ``*_test.toml`` holding ``[[case]]`` tables is a test file, each
case one test, decided by the function the runtime runs (see ``docs/policy-as-code.md``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ._policy_suites import PolicySuiteFile, is_policy_suite
from .fake_claude import FakeClaude
from .otel import InMemoryMetrics, global_span_exporter

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@pytest.fixture
def fake_claude() -> Iterator[FakeClaude]:
    with FakeClaude() as fake:
        yield fake


@pytest.fixture
def span_exporter() -> Iterator[InMemorySpanExporter]:
    exporter = global_span_exporter()
    exporter.clear()
    yield exporter
    exporter.clear()


@pytest.fixture
def metric_reader() -> Iterator[InMemoryMetrics]:
    metrics = InMemoryMetrics()
    yield metrics
    metrics.shutdown()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if is_policy_suite(file_path):
        suite: PolicySuiteFile = PolicySuiteFile.from_parent(parent, path=file_path)
        return suite
    return None
