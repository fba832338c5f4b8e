"""The README's OpenTelemetry quick start: the Flask section's app under ``opentelemetry-instrument``.

Installed as a reader installs it (the Flask section's line, then the audit section's), run with the
exact flags the README gives, stopped with Ctrl-C (SIGINT) so the batched spans and the counters flush.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from claude_rbac.testing import FakeClaude

from . import readme
from .conftest import TELEMETRY
from .served import Browser, serving
from .venvs import VenvPool

pytestmark = [pytest.mark.install, pytest.mark.slow]

KEY = "sk-ant-api03-install-matrix-0000000000000000000000000000-TEST"


def printed_objects(output: str) -> list[dict[str, Any]]:
    """The JSON objects the console exporters printed, among the server's own lines."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (start := output.find("{", at)) >= 0:
        try:
            value, at = decoder.raw_decode(output, start)
        except ValueError:
            at = start + 1
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def test_the_console_quick_start_prints_the_trail(venvs: VenvPool, fake_claude: FakeClaude, tmp_path: Path) -> None:
    (code,) = readme.blocks("Flask", "python")
    (tmp_path / "app.py").write_text(code, encoding="utf-8")
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake_claude.url}
    command = readme.command(TELEMETRY, "opentelemetry-instrument")
    with serving(venvs.get("otel"), command, cwd=tmp_path, env=env, stop=signal.SIGINT) as served:
        uma = Browser(served.url)
        assert uma.post("/login", form={"username": "uma"})[0] == 200
        assert uma.post("/chat", json_body={"prompt": "hi"})[0] == 200
        assert uma.post("/chat", json_body={"prompt": "hi", "model": "claude-opus-4-7"})[0] == 403
    printed = printed_objects(served.output)
    spans = {span["context"]["span_id"]: span for span in printed if "context" in span and "name" in span}
    decisions = [span for span in spans.values() if span["name"] == "claude_rbac.authorize"]
    assert {span["attributes"]["claude_rbac.decision"] for span in decisions} == {"allow", "deny"}
    assert all(span["resource"]["attributes"]["service.name"] == "my-app" for span in decisions)
    denied = next(span for span in decisions if span["attributes"]["claude_rbac.decision"] == "deny")
    call = spans[denied["parent_id"]]  # the decision of a call sits in the SDK's call span...
    assert call["name"] == "anthropic.messages.create"
    assert spans[call["parent_id"]]["name"] == "POST /chat"  # ...inside the server span of the request
    metrics = {
        metric["name"]
        for exported in printed
        for resource in exported.get("resource_metrics", [])
        for scope in resource["scope_metrics"]
        for metric in scope["metrics"]
    }
    assert "claude_rbac.decisions" in metrics
