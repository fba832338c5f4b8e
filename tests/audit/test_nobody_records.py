"""With no OpenTelemetry SDK set up, an allowed call builds no span attributes and starts no span of ours,
and a call limited by requests alone does not read usage from its answer (nor scan its stream); an SDK
provider set later, after the clients were built, gets every decision and the tokens from then on.

The global providers can be set once per process, and the rest of the suite sets them, so the scenario
runs in a fresh interpreter of its own and reports what it saw as JSON. What it counts is observed with a
profile hook (calls of the attribute builder and of any tracer's ``start_span`` made from the auditor), not
by replacing anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from opentelemetry.metrics import NoOpCounter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NoOpTracer

from claude_rbac.enforcement._recording import PointsProbe, SpansProbe

SCENARIO = textwrap.dedent(
    """
    import json, logging, sys

    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from claude_rbac import RBAC, AccessDenied, Principal
    from claude_rbac.enforcement import _audit, _usage
    from claude_rbac.testing import FakeClaude

    KEY = "sk-ant-api03-nobody-records-tests-000000000000000000000000000-NOBD"
    denials = []
    handler = logging.Handler()
    handler.emit = lambda record: denials.append(record.getMessage())
    logging.getLogger("claude_rbac").addHandler(handler)
    logging.getLogger("claude_rbac").setLevel(logging.INFO)

    built, started, read = [0], [0], [0]
    attribute_code = _audit.Auditor.attributes.__code__
    reading_code = (_usage.parsed_usage.__code__, _usage.SseUsage.feed.__code__)

    def watch(frame, event, arg):
        if event != "call":
            return
        if frame.f_code is attribute_code:
            built[0] += 1
        elif frame.f_code in reading_code:
            read[0] += 1
        elif frame.f_code.co_name == "start_span" and frame.f_back is not None:
            if frame.f_back.f_code.co_filename == _audit.__file__:
                started[0] += 1

    def call(client, model="claude-haiku-4-5"):
        client.messages.create(model=model, max_tokens=50, messages=[{"role": "user", "content": "hi"}])

    def stream(client):
        asked = {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
        with client.messages.stream(**asked) as s:
            return s.get_final_message().usage.output_tokens

    seen = {}
    with FakeClaude() as fake:
        policy = {"roles": {"user": {"models": ["claude-haiku-*"], "max_tokens": 100, "rpm": 1000}}}
        with RBAC(policy, api_key=KEY, base_url=fake.url, warn_multiprocess=False) as rbac:
            clients = [rbac.client(Principal(f"user-{i}", "user")) for i in range(3)]
            sys.setprofile(watch)
            for _ in range(4):
                for client in clients:
                    call(client)
            streamed = stream(clients[0])
            try:
                call(clients[0], "claude-opus-4-7")
            except AccessDenied:
                pass
            sys.setprofile(None)
            seen["before"] = {"built": built[0], "started": started[0], "denials": len(denials), "read": read[0]}
            seen["streamed"] = streamed

            exporter = InMemorySpanExporter()
            tracer_provider = TracerProvider()
            tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(tracer_provider)
            reader = InMemoryMetricReader()
            metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
            sys.setprofile(watch)
            for client in clients:  # the same clients, built before any provider was set
                call(client)
            stream(clients[2])
            sys.setprofile(None)
            try:
                call(clients[1], "claude-opus-4-7")
            except AccessDenied:
                pass
            spans = exporter.get_finished_spans()
            decisions = [dict(s.attributes) for s in spans if s.name == "claude_rbac.authorize"]
            calls = [dict(s.attributes) for s in spans if s.name != "claude_rbac.authorize"]
            points = [
                (dict(point.attributes), point.value)
                for rm in reader.get_metrics_data().resource_metrics
                for sm in rm.scope_metrics
                for metric in sm.metrics
                if metric.name == "claude_rbac.decisions"
                for point in metric.data.data_points
            ]
            seen["after"] = {
                "decisions": [(d["claude_rbac.decision"], d.get("enduser.id")) for d in decisions],
                "call_spans_annotated": sum(1 for c in calls if "claude_rbac.decision" in c),
                "points": sorted((p["claude_rbac.decision"], v) for p, v in points),
                "tokens": sum(1 for rm in reader.get_metrics_data().resource_metrics
                              for sm in rm.scope_metrics for m in sm.metrics if m.name == "claude_rbac.tokens"),
                "denials": len(denials),
                "read": read[0],
            }
        seen["sent"] = fake.count()
    print(json.dumps(seen))
    """
)


def test_nothing_is_built_for_nobody_and_a_provider_set_later_gets_everything() -> None:
    done = subprocess.run([sys.executable, "-c", SCENARIO], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # 12 allowed calls, one stream and one denial with nobody recording: attributes built once, for the
    # denial's log line; the role limits requests only, so no answer's usage was read and no stream scanned
    assert seen["before"] == {"built": 1, "started": 0, "denials": 1, "read": 0}
    assert seen["streamed"] > 0  # the stream reached the caller whole
    after = seen["after"]
    assert after["decisions"] == [
        ["allow", "user-0"],
        ["allow", "user-1"],
        ["allow", "user-2"],
        ["allow", "user-2"],
        ["deny", "user-1"],
    ]
    assert after["call_spans_annotated"] == 5  # the SDK's call spans carry the decision too, a denial's as well
    assert after["points"] == [["allow", 4], ["deny", 1]]
    assert after["tokens"] == 1  # the token counter, fed once a meter records: usage is read again
    assert after["read"] >= 4  # each call's usage, and the stream's events
    assert after["denials"] == 2
    assert seen["sent"] == 17


def test_the_probes_answer_for_what_they_are_given() -> None:
    assert SpansProbe(NoOpTracer())() is False
    assert SpansProbe(TracerProvider().get_tracer("t"))() is True
    assert PointsProbe(NoOpCounter("c"))() is False
    provider = MeterProvider()
    assert PointsProbe(provider.get_meter("m").create_counter("c"))() is True
    provider.shutdown()
