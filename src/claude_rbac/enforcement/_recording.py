"""Whether anyone records the decision spans and metric points: with no SDK installed, skip the work.

OpenTelemetry's API hands out proxies until an SDK provider is set, and the global provider may be set
once, at any time, possibly after our clients were built: a ``ProxyTracer`` starts no-op spans until then
and its real tracer after; a proxy counter drops its points until its meter gets a real one. Asking
``trace.get_tracer_provider()`` on each call would cost more than a microsecond (it reads the environment
each time no provider is set), so these probes look at the proxy's delegate instead: a couple of attribute
reads, about 0.1 µs. They read the API's private ``_tracer`` / ``_real_instrument``; should a later
opentelemetry-api rename them, the probes answer "recording" (never "nobody"), so nothing is lost but
the saving (``tests/audit/test_nobody_records.py`` notices).

Anything other than the API's proxies and no-op classes (an SDK tracer with any sampler, a vendor's
provider) counts as recording.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.metrics import Counter, NoOpCounter
from opentelemetry.trace import NoOpTracer, ProxyTracer, Tracer

__all__ = ["PointsProbe", "SpansProbe"]

_MISSING: Final = object()


class SpansProbe:
    """Whether spans from ``tracer`` go anywhere, asked per decision."""

    __slots__ = ("_proxy", "_settled")

    def __init__(self, tracer: Tracer) -> None:
        self._proxy: ProxyTracer | None = None
        self._settled: bool | None = None
        if isinstance(tracer, ProxyTracer) and isinstance(getattr(type(tracer), "_tracer", None), property):
            self._proxy = tracer  # undecided until the global provider is set: ask the proxy each time
        else:
            self._settled = not isinstance(tracer, NoOpTracer)

    def __call__(self) -> bool:
        settled = self._settled
        if settled is not None:
            return settled
        assert self._proxy is not None
        delegate = self._proxy._tracer  # the proxy's real tracer once a provider is set, else its no-op one
        if isinstance(delegate, NoOpTracer):
            return False
        self._settled = True  # a global provider is set once per process: this never changes back
        return True


class PointsProbe:
    """Whether points added to ``counter`` go anywhere, asked per decision."""

    __slots__ = ("_counter", "_settled")

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._settled: bool | None = None
        if isinstance(counter, NoOpCounter):
            self._settled = False
        elif getattr(counter, "_real_instrument", _MISSING) is _MISSING:
            self._settled = True  # an SDK (or a vendor's) counter, or an API that changed: record

    def __call__(self) -> bool:
        settled = self._settled
        if settled is not None:
            return settled
        real = self._counter._real_instrument  # type: ignore[attr-defined]
        if real is None or isinstance(real, NoOpCounter):
            return False
        self._settled = True
        return True
