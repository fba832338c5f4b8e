"""OpenTelemetry for the examples, configured by the standard ``OTEL_*`` environment variables.

* ``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER``, ``OTEL_LOGS_EXPORTER``: comma-separated ``console``,
  ``otlp`` or ``none``. Unset, a signal goes over OTLP when an endpoint is set
  (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT``), else nowhere:
  the demo runs offline. ``CLAUDE_RBAC_DEMO_TRACES=console`` is short for ``OTEL_TRACES_EXPORTER=console``.
* ``otlp`` speaks ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``, the default, or ``grpc``) and needs
  ``pip install opentelemetry-exporter-otlp-proto-http`` (or ``-grpc``); the exporter reads its own
  ``OTEL_EXPORTER_OTLP_*`` endpoint and header variables.
* ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` name the service (default ``claude-rbac-example``).
* ``OTEL_SDK_DISABLED=true`` turns it all off. A provider already installed (``opentelemetry-instrument``
  does that) is left as it is.

A real app does this with ``opentelemetry-instrument`` or its own setup; claude_rbac needs only the API.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry import _logs, metrics, trace

SIGNALS = ("traces", "metrics", "logs")
_OTLP_MODULES = {"traces": "trace_exporter", "metrics": "metric_exporter", "logs": "_log_exporter"}
_OTLP_CLASSES = {"traces": "OTLPSpanExporter", "metrics": "OTLPMetricExporter", "logs": "OTLPLogExporter"}


@dataclass(frozen=True)
class Telemetry:
    """Which signals ``configure_telemetry_from_env()`` installed an SDK provider for, in this process."""

    traces: bool = False
    metrics: bool = False
    logs: bool = False


def exporters_for(signal: str) -> list[str]:
    """The exporter names ``OTEL_<SIGNAL>_EXPORTER`` asks for (``none`` dropped); a name we lack is a ValueError."""
    variable = f"OTEL_{signal.upper()}_EXPORTER"
    value = os.environ.get(variable)
    if signal == "traces" and os.environ.get("CLAUDE_RBAC_DEMO_TRACES") == "console":
        value = f"{value},console" if value else "console"
    if value is None:
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
            f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    names = list(dict.fromkeys(name.strip() for name in value.split(",") if name.strip() not in ("", "none")))
    unknown = [name for name in names if name not in ("console", "otlp")]
    if unknown:
        raise ValueError(f"{variable}: the examples know console, otlp and none, not {', '.join(unknown)}")
    return names


def otlp_exporter(signal: str) -> Any:
    """The OTLP exporter of ``signal`` for the configured protocol; it reads its endpoint from the environment."""
    protocol = (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    transport = "grpc" if protocol == "grpc" else "http"
    try:
        module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{transport}.{_OTLP_MODULES[signal]}")
    except ImportError:
        raise RuntimeError(
            f"OTEL_{signal.upper()}_EXPORTER=otlp needs `pip install opentelemetry-exporter-otlp-proto-{transport}`"
        ) from None
    return getattr(module, _OTLP_CLASSES[signal])()


def _unset(provider: object) -> bool:
    # The API's placeholders until a provider is installed: ProxyTracerProvider, _ProxyMeterProvider...
    return "Proxy" in type(provider).__name__


@functools.cache
def configure_telemetry_from_env() -> Telemetry:
    """Install the SDK providers the environment asks for, once per process; what was installed."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return Telemetry()
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "claude-rbac-example"}))
    wanted = {signal: exporters_for(signal) for signal in SIGNALS}
    return Telemetry(
        traces=bool(wanted["traces"]) and _install_traces(wanted["traces"], resource),
        metrics=bool(wanted["metrics"]) and _install_metrics(wanted["metrics"], resource),
        logs=bool(wanted["logs"]) and _install_logs(wanted["logs"], resource),
    )


def _install_traces(names: list[str], resource: Any) -> bool:
    if not _unset(trace.get_tracer_provider()):
        return False
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    provider = TracerProvider(resource=resource)
    for name in names:
        if name == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        else:
            provider.add_span_processor(BatchSpanProcessor(otlp_exporter("traces")))
    trace.set_tracer_provider(provider)
    return True


def _install_metrics(names: list[str], resource: Any) -> bool:
    if not _unset(metrics.get_meter_provider()):
        return False
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

    # Every OTEL_METRIC_EXPORT_INTERVAL milliseconds (default 60 s), and once more when the process exits.
    readers = [
        PeriodicExportingMetricReader(ConsoleMetricExporter() if name == "console" else otlp_exporter("metrics"))
        for name in names
    ]
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    return True


def _install_logs(names: list[str], resource: Any) -> bool:
    if not _unset(_logs.get_logger_provider()):
        return False
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import (
        BatchLogRecordProcessor,
        ConsoleLogRecordExporter,
        SimpleLogRecordProcessor,
    )

    provider = LoggerProvider(resource=resource)
    for name in names:
        if name == "console":
            provider.add_log_record_processor(SimpleLogRecordProcessor(ConsoleLogRecordExporter()))
        else:
            provider.add_log_record_processor(BatchLogRecordProcessor(otlp_exporter("logs")))
    _logs.set_logger_provider(provider)
    return True


def log_events_wanted() -> bool:
    """Whether OTel log events have somewhere to go (installed here, or by ``opentelemetry-instrument``)."""
    return not _unset(_logs.get_logger_provider())


# -- a SERVER span per request, for the WSGI examples -----------------------------------------------


def wsgi_server_spans(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """What ``opentelemetry-instrumentation-wsgi`` does, in small: one SERVER span per request, current while
    the app runs and while its body is iterated (a streamed answer is produced then), so the route guard's
    ``claude_rbac.authorize`` span and the SDK's call span land under it. Install the real instrumentation
    (``opentelemetry-instrument``) in an app of your own; this keeps the demo free of extra packages.
    """
    tracer = trace.get_tracer("examples.telemetry")

    def with_server_span(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        span = tracer.start_span(
            f"{method} {path}",
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )

        def recording_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            code = int(status.split(" ", 1)[0])
            span.set_attribute("http.response.status_code", code)
            if code >= 500:
                span.set_status(trace.StatusCode.ERROR)
            return start_response(status, headers, exc_info)

        try:
            with trace.use_span(span, end_on_exit=False):
                body = app(environ, recording_start_response)
        except BaseException:
            span.end()
            raise
        return _iterate_in(span, body)

    return with_server_span


def _iterate_in(span: trace.Span, body: Iterable[bytes]) -> Iterator[bytes]:
    try:
        with trace.use_span(span, end_on_exit=False):
            try:
                yield from body
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
    finally:
        span.end()
