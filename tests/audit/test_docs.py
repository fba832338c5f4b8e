"""What docs/audit.md shows holds: its Python runs as written, its tree is the tree a request leaves,
its collector configuration is well-formed, and the names it lists are the ones the code writes.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from claude_rbac import RBAC, AccessDenied, Principal, audit
from claude_rbac.testing import FakeClaude

from .apps.common import Harness
from .trail import SENTINEL_KEY, SENTINEL_PROMPT, AuditTrail, attributes, render

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "audit.md"
KINDS = ("SERVER", "INTERNAL", "CLIENT")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_doc_has_the_blocks_these_tests_read() -> None:
    setup, formatter = blocks("python")
    assert "RBAC(" in setup
    assert "logging.Formatter" in formatter
    assert len(blocks("yaml")) == 1
    assert any("claude_rbac.authorize" in block for block in blocks("text"))


def test_the_setup_snippet_runs_as_written(
    fake_claude: FakeClaude, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, trail: AuditTrail
) -> None:
    shutil.copy(ROOT / "examples" / "rbac.toml", tmp_path / "rbac.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLAUDE_RBAC_AUDIT_KEY", "k-audit")
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL_KEY)
    namespace: dict[str, Any] = {}
    exec(compile(blocks("python")[0], str(DOC), "exec"), namespace)
    rbac: RBAC = namespace["rbac"]
    try:
        assert rbac.auditor.user_id_mode == "hashed"
        rbac.require(Principal("uma", "user"), "user", route="/api/chat")
    finally:
        rbac.close()
    (decision,) = trail.named("claude_rbac.authorize")
    expected = hmac.new(b"k-audit", b"uma", hashlib.sha256).hexdigest()[:32]
    assert attributes(decision)["enduser.pseudo.id"] == expected
    assert "enduser.id" not in attributes(decision)


def test_the_log_formatter_writes_one_json_line_per_denial(
    fake_claude: FakeClaude, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("claude_rbac")
    level, handlers = logger.level, list(logger.handlers)
    namespace: dict[str, Any] = {}
    exec(compile(blocks("python")[1], str(DOC), "exec"), namespace)
    stream = io.StringIO()
    namespace["handler"].setStream(stream)
    rbac = RBAC({"roles": {"user": {"models": ["claude-haiku-*"]}}}, api_key=SENTINEL_KEY, base_url=fake_claude.url)
    try:
        client = rbac.client(Principal("uma", "user"), route="/api/chat")
        with pytest.raises(AccessDenied):
            client.messages.create(
                model="claude-opus-4-7", max_tokens=10, messages=[{"role": "user", "content": SENTINEL_PROMPT}]
            )
    finally:
        rbac.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
    (documented_line,) = [block.strip() for block in blocks("text") if block.startswith("claude_rbac denied:")]
    assert [record.getMessage() for record in caplog.records if record.name == "claude_rbac"] == [documented_line]
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    del record["time"]
    assert record == {
        "event": "claude_rbac.denied",
        "reason": "model_not_allowed",
        "role": "user",
        "model": "claude-opus-4-7",
        "route": "/api/chat",
        "enforced": True,
        "revision": rbac.policy.revision,
        "user": "uma",
    }
    assert fake_claude.requests == []


def documented_tree() -> list[tuple[int, str, str, str | None]]:
    """(depth, kind, span name, outcome) of each line of the doc's tree."""
    (tree,) = [block for block in blocks("text") if "├──" in block]
    rows = []
    for line in tree.splitlines():
        depth = (len(line) - len(line.lstrip(" ├└─│"))) // 4
        words = line.strip(" ├└─│").split()
        kind_at = next(index for index, word in enumerate(words) if word in KINDS)
        outcome = line.rsplit("-> ", 1)[1].strip() if "-> " in line else None
        rows.append((depth, words[kind_at], " ".join(words[:kind_at]), outcome))
    return rows


@pytest.mark.parametrize("framework", ["flask"])
def test_the_tree_in_the_doc_is_the_tree_a_request_leaves(
    framework: str, make_app: Callable[..., Harness], trail: AuditTrail
) -> None:
    app = make_app()
    assert app.post("/chat", "uma", {"prompt": SENTINEL_PROMPT, "max_tokens": 5000}).status == 200
    rendered = []
    for line in render(trail.spans):
        depth = (len(line) - len(line.lstrip(" "))) // 2
        kind, rest = line.strip().split(" ", 1)
        name, _, outcome = rest.partition(" -> ")
        rendered.append((depth, kind, name, outcome))
    documented = documented_tree()
    assert [(depth, kind) for depth, kind, _, _ in documented] == [(depth, kind) for depth, kind, _, _ in rendered]
    assert [name for _, _, name, _ in documented[1:]] == [name for _, _, name, _ in rendered[1:]]
    for (_, _, _, said), (_, _, _, happened) in zip(documented, rendered, strict=True):
        assert said is None or said == happened


def test_the_collector_configuration_is_well_formed() -> None:
    (config,) = [yaml.safe_load(block) for block in blocks("yaml")]
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    assert all(pipeline == {"receivers": ["otlp"], "exporters": ["debug"]} for pipeline in pipelines.values())


def test_the_doc_names_every_attribute_metric_and_event_the_code_writes() -> None:
    text = DOC.read_text()
    names = [value for name, value in vars(audit).items() if name.isupper() and isinstance(value, str)]
    assert names, "audit.py's names"
    missing = [name for name in names if f"`{name}`" not in text]
    assert missing == []
    for reason in (
        "allowed",
        "clamped",
        "role_insufficient",
        "model_not_allowed",
        "rate_limited",
        "backend_unavailable",
    ):
        assert f"`{reason}`" in text
