"""What docs/policy-as-code.md shows holds: its suite passes, its diff is what the command prints, and its
Python runs as written."""

from __future__ import annotations

import re
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from claude_rbac import RBAC, Policy
from claude_rbac.cli import main
from claude_rbac.policy import read_suite, run_case

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "policy-as-code.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_suite_in_the_doc_passes_against_the_example_policy(tmp_path: Path) -> None:
    (suite,) = blocks("toml")
    shutil.copy(ROOT / "examples" / "rbac.toml", tmp_path / "rbac.toml")
    (tmp_path / "rbac_test.toml").write_text(suite)
    policy = Policy.from_file(tmp_path / "rbac.toml")
    outcomes = [run_case(policy, case) for case in read_suite(tmp_path / "rbac_test.toml").cases]
    assert len(outcomes) == 3
    assert [outcome.status for outcome in outcomes] == ["pass"] * 3


def test_the_diff_in_the_doc_is_what_the_command_prints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (documented,) = [block for block in blocks("text") if "role(s) changed" in block]
    monkeypatch.chdir(ROOT)
    main(["diff", "examples/rbac.toml", "examples/rbac_next.toml"])
    printed = capsys.readouterr().out
    revision = Policy.from_file(ROOT / "examples" / "rbac.toml").revision
    assert printed == re.sub(r"revision [0-9a-f]{12}\)", f"revision {revision})", documented, count=1)


def test_the_reload_snippet_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (snippet,) = [block for block in blocks("python") if "reload=" in block]
    shutil.copy(ROOT / "examples" / "rbac.toml", tmp_path / "rbac.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-policy-as-code-doc-0000000000000000000000-DOCS")
    previous = signal.getsignal(signal.SIGHUP)
    namespace: dict[str, Any] = {}
    try:
        exec(compile(snippet, str(DOC), "exec"), namespace)
    finally:
        signal.signal(signal.SIGHUP, previous)
    rbac: RBAC = namespace["rbac"]
    rbac.close()
    assert rbac.policy.revision == Policy.from_file(tmp_path / "rbac.toml").revision
