"""OpenTelemetry helpers for tests: read spans and metrics in memory, with the OTel SDK.

The global tracer provider can be set once per process, so :func:`global_span_exporter` installs one
SDK provider with one in-memory exporter the first time it is called, and hands back that exporter
ever after. Both claude_rbac's decision spans and the anthropic SDK's call spans land in it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

__all__ = ["InMemoryMetrics", "global_span_exporter", "metric_points"]

_lock = threading.Lock()
_exporter: InMemorySpanExporter | None = None


def global_span_exporter() -> InMemorySpanExporter:
    """The in-memory exporter behind the global SDK tracer provider, installed on first use."""
    global _exporter
    with _lock:
        if _exporter is None:
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            if trace.get_tracer_provider() is not provider:
                raise RuntimeError("a global tracer provider was already set; pass tracer_provider= instead")
            _exporter = exporter
        return _exporter


class InMemoryMetrics:
    """A meter provider whose points can be read back: pass ``.provider`` as ``RBAC(meter_provider=...)``."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        self.reader: InMemoryMetricReader = InMemoryMetricReader()
        self.provider: MeterProvider = MeterProvider(metric_readers=[self.reader])

    def points(self, name: str) -> list[tuple[dict[str, Any], int | float]]:
        return list(metric_points(self.reader, name))

    def shutdown(self) -> None:
        self.provider.shutdown()


def metric_points(reader: InMemoryMetricReader, name: str) -> Iterator[tuple[dict[str, Any], int | float]]:
    """(attributes, value) for each data point of the metric ``name``."""
    data = reader.get_metrics_data()
    if data is None:
        return
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        yield dict(point.attributes or {}), point.value  # type: ignore[union-attr]
