"""The examples show a live audit trail: started with the standard ``OTEL_*`` variables set to ``console``,
the Flask example prints each request's trace (its SERVER span, the route guard's decision, the SDK's call
span and the call's decision), the ``claude_rbac.access.denied`` log events and the two counters; and they read
those variables the way the OpenTelemetry SDKs do.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from examples.backend import PLACEHOLDER_KEY
from examples.telemetry import SIGNALS, exporters_for, otlp_exporter

from tests.support.redis import free_port

from .trail import SENTINEL_PROMPT

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "audit.md"


def example_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no Claude key, no OTel settings but ours."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANTHROPIC_", "CLAUDE_RBAC_", "OTEL_", "DJANGO_"))
    }
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def printed_objects(output: str) -> Iterator[dict[str, Any]]:
    """The JSON objects the console exporters printed, among the example's other lines."""
    decoder = json.JSONDecoder()
    position = 0
    while (start := output.find("{", position)) != -1:
        try:
            value, position = decoder.raw_decode(output, start)
        except ValueError:
            position = start + 1
            continue
        if isinstance(value, dict):
            yield value


def wait_until_serving(url: str, process: subprocess.Popen[str], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the example exited"
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def documented_console_command() -> tuple[dict[str, str], list[str]]:
    """The environment and the command docs/audit.md gives for the console, as written there."""
    (line,) = re.findall(r"^OTEL_TRACES_EXPORTER=console .*$", DOC.read_text(), flags=re.MULTILINE)
    words = shlex.split(line)
    assignments = [word for word in words if re.match(r"^[A-Z_]+=", word)]
    command = words[len(assignments) :]
    assert command[0] == "python"
    return dict(word.split("=", 1) for word in assignments), [sys.executable, *command[1:]]


@pytest.mark.slow
def test_the_flask_example_prints_its_audit_trail_to_the_console() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    variables, command = documented_console_command()
    assert command[1:] == ["-m", "examples.flask_app"]
    env = example_env(**variables, OTEL_SERVICE_NAME="audit-demo")
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_until_serving(url, process)
        with httpx.Client(base_url=url, timeout=10) as http:
            assert http.post("/login", json={"username": "uma"}).status_code == 200
            assert http.post("/api/chat", json={"prompt": SENTINEL_PROMPT}).status_code == 200
            denied = http.post("/api/chat", json={"prompt": SENTINEL_PROMPT, "model": "claude-opus-4-7"})
            assert denied.status_code == 403
        process.send_signal(signal.SIGINT)  # werkzeug stops; the providers flush at exit (the metrics too)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    printed = list(printed_objects(output))
    spans = [item for item in printed if "context" in item and "kind" in item]
    by_id = {span["context"]["span_id"]: span for span in spans}
    decisions = [span for span in spans if span["name"] == "claude_rbac.authorize"]
    assert decisions, "no claude_rbac.authorize span printed"
    guards = [span for span in decisions if "claude_rbac.required_role" in span["attributes"]]
    calls = [span for span in decisions if "claude_rbac.required_role" not in span["attributes"]]
    assert [span["attributes"]["claude_rbac.decision"] for span in guards] == ["allow", "allow"]
    for guard in guards:
        server = by_id[guard["parent_id"]]
        assert (server["kind"], server["name"]) == ("SpanKind.SERVER", "POST /api/chat")
        assert server["attributes"]["enduser.id"] == "uma"
        assert server["resource"]["attributes"]["service.name"] == "audit-demo"
    assert [span["attributes"]["claude_rbac.decision.reason"] for span in calls] == ["allowed", "model_not_allowed"]
    for call in calls:
        sdk_span = by_id[call["parent_id"]]
        assert sdk_span["name"] == "anthropic.messages.create"
        assert by_id[sdk_span["parent_id"]]["kind"] == "SpanKind.SERVER"

    events = [item for item in printed if item.get("event_name") == "claude_rbac.access.denied"]
    assert [event["attributes"]["claude_rbac.decision.reason"] for event in events] == ["model_not_allowed"]
    metric_names = {
        metric["name"]
        for item in printed
        for resource in item.get("resource_metrics", [])
        for scope in resource["scope_metrics"]
        for metric in scope["metrics"]
    }
    assert {"claude_rbac.decisions", "claude_rbac.tokens"} <= metric_names
    assert PLACEHOLDER_KEY not in output
    assert SENTINEL_PROMPT not in output


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, {"traces": [], "metrics": [], "logs": []}),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
            {"traces": ["otlp"], "metrics": ["otlp"], "logs": ["otlp"]},
        ),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"},
            {"traces": ["otlp"], "metrics": [], "logs": []},
        ),
        (
            {"OTEL_TRACES_EXPORTER": "console,otlp", "OTEL_LOGS_EXPORTER": "none"},
            {"traces": ["console", "otlp"], "metrics": [], "logs": []},
        ),
        ({"CLAUDE_RBAC_DEMO_TRACES": "console"}, {"traces": ["console"], "metrics": [], "logs": []}),
    ],
)
def test_the_examples_read_the_standard_variables(
    environment: dict[str, str], expected: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_") or name == "CLAUDE_RBAC_DEMO_TRACES":
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert {signal: exporters_for(signal) for signal in SIGNALS} == expected


def test_an_exporter_the_examples_lack_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    with pytest.raises(
        ValueError, match="OTEL_METRICS_EXPORTER: the examples know console, otlp and none, not prometheus"
    ):
        exporters_for("metrics")


def test_otlp_without_its_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("opentelemetry.exporter") is not None:
        pytest.skip("an OTLP exporter is installed here")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(RuntimeError, match="pip install opentelemetry-exporter-otlp-proto-grpc"):
        otlp_exporter("traces")
