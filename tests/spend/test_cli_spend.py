"""``claude-rbac explain`` shows a role's spend limits and the call's reservation; ``diff`` shows spend in dollars."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_rbac.cli import main

POLICY = 'version = 1\n[roles.intern]\nmodels = ["claude-haiku-4-5"]\nmax_tokens = 1000\n{spend}\n'


def write(tmp_path: Path, name: str, spend: str) -> str:
    path = tmp_path / name
    path.write_text(POLICY.format(spend=spend))
    return str(path)


def test_explain_shows_the_limits_and_the_worst_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "p.toml", "spend = { day = 2.00 }\npool = { spend = { month = 2000 } }")
    assert main(["explain", path, "--role", "intern", "--model", "claude-haiku-4-5", "--max-tokens", "1000"]) == 0
    out = capsys.readouterr().out
    assert "limit: spend.day $2 (UTC day)" in out
    assert "limit: pool.spend.month $2000 (UTC month)" in out
    # The estimate of {"messages": []} is 1 token at $1/M, and 1,000 output tokens at $5/M.
    assert "reserves: $0.005001 before the call" in out


def test_diff_lists_spend_raises_as_gains_in_dollars(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write(tmp_path, "old.toml", "spend = { day = 2.00 }")
    new = write(tmp_path, "new.toml", "spend = { day = 3.50 }\npool = { spend = { month = 2000 } }")
    main(["diff", old, new])
    out = capsys.readouterr().out
    assert "+ spend.day $2 -> $3.5" in out
    assert "+ pool.spend.month $2000 -> unlimited" not in out
    assert "pool.spend.month unlimited -> $2000" in out  # a new limit where there was none: a loss
    assert main(["diff", old, new, "--fail-on-gain", "spend"]) != 0
