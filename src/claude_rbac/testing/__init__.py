"""Test kit for claude_rbac and for apps that use it: a real local Messages API and OTel helpers.

The pytest plugin (registered as ``claude_rbac``) provides the fixtures ``fake_claude``,
``span_exporter`` and ``metric_reader``; see :mod:`claude_rbac.testing.pytest_plugin`.
"""

from .fake_claude import FakeClaude, RecordedRequest
from .otel import InMemoryMetrics, global_span_exporter, metric_points

__all__ = ["FakeClaude", "InMemoryMetrics", "RecordedRequest", "global_span_exporter", "metric_points"]
