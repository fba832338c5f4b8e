"""``claude-rbac spend``: the ledger's rows as a table and as JSON, exact to the micro-dollar."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from claude_rbac.cli import main
from claude_rbac.quota import SpendLedger
from tests.support.redis import free_port

DAY = dt.datetime.now(dt.timezone.utc).date()


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "claude_rbac.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


@pytest.fixture
def ledger(redis_url: str, key_prefix: str) -> SpendLedger:
    written = SpendLedger(redis_url, key_prefix=key_prefix)
    written.record(DAY, "uma", "user", 1_250, 1)
    written.record(DAY, "paul", "power", 3_000_001, 2)
    written.record(DAY, "ulf", "user", 400_000, 3)
    written.record(DAY - dt.timedelta(days=1), "uma", "user", 7, 1)
    written.close()
    return written


def test_the_table_sorts_principals_by_dollars_then_totals_roles(
    ledger: SpendLedger, redis_url: str, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["spend", "--storage", redis_url, "--key-prefix", key_prefix]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"Spend on {DAY.isoformat()} (UTC), US dollars",
        "",
        "principal  role    dollars  calls",
        "paul       power  3.000001      2",
        "ulf        user   0.400000      3",
        "uma        user   0.001250      1",
        "",
        "By role",
        "",
        "role    dollars  calls  principals",
        "power  3.000001      2           1",
        "user   0.401250      4           2",
        "total  3.401251      6",
    ]


def test_json_is_the_ledger_report(
    ledger: SpendLedger, redis_url: str, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    yesterday = (DAY - dt.timedelta(days=1)).isoformat()
    assert main(["spend", "--storage", redis_url, "--key-prefix", key_prefix, "--day", yesterday, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == SpendLedger(redis_url, key_prefix=key_prefix).report(DAY - dt.timedelta(days=1)).as_dict()
    assert printed["rows"] == [
        {"principal": "uma", "role": "user", "dollars": "0.000007", "micro_dollars": 7, "calls": 1}
    ]


def test_an_empty_day(redis_url: str, key_prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spend", "--storage", redis_url, "--key-prefix", key_prefix, "--day", "2026-01-02"]) == 0
    assert capsys.readouterr().out == "No spend recorded on 2026-01-02 (UTC).\n"


def test_ids_print_without_terminal_escapes_and_a_missing_id_says_so(
    redis_url: str, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    written = SpendLedger(redis_url, key_prefix=key_prefix)
    written.record(DAY, "evil\x1b[2J\x07", "user", 2, 1)
    written.record(DAY, "", "user", 1, 1)
    assert main(["spend", "--storage", redis_url, "--key-prefix", key_prefix]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b[2J\\x07  user" in out
    assert "(not kept)" in out


def test_the_storage_comes_from_the_environment(redis_url: str, key_prefix: str, ledger: SpendLedger) -> None:
    env = {**os.environ, "CLAUDE_RBAC_STORAGE": redis_url, "CLAUDE_RBAC_KEY_PREFIX": key_prefix}
    result = run("spend", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["micro_dollars"] == 3_401_251


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "name the storage the app uses"),
        (["--storage", "memory://"], "a memory:// ledger lives inside the app's process"),
        (["--storage", "nosuch://x"], "unknown storage scheme 'nosuch'"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_RBAC_STORAGE"}
    result = run("spend", *argv, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_day_is_a_usage_error() -> None:
    result = run("spend", "--storage", "redis://127.0.0.1:1/0", "--day", "30/11/2026")
    assert result.returncode == 2
    assert "expected a date as YYYY-MM-DD, got '30/11/2026'" in result.stderr


def test_a_storage_that_does_not_answer_exits_1_naming_no_address() -> None:
    result = run("spend", "--storage", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    assert result.returncode == 1
    assert result.stderr.startswith("error: could not read the spend ledger: ")
    assert "hunter2" not in result.stderr and "127.0.0.1" not in result.stderr
