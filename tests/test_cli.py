"""The claude-rbac command as a user types it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import claude_rbac
from claude_rbac.cli import main
from claude_rbac.policy import fingerprint

EXAMPLE = str(Path(__file__).parents[1] / "examples" / "rbac.toml")


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "claude_rbac.cli", *argv], capture_output=True, text=True, timeout=60, check=False
    )


def test_check_a_good_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", EXAMPLE]) == 0
    assert "OK, 4 role(s): viewer, user, power, admin" in capsys.readouterr().out


def test_check_prints_every_problem_with_file_role_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[roles.user]\nmodels = ["claude haiku"]\nrpm = 0\nmax_token = 5\n')
    result = run("check", str(bad))
    assert result.returncode == 1
    assert f"error: {bad}: roles.user.models: model pattern 'claude haiku' can never match a model id" in result.stderr
    assert f"error: {bad}: version: missing" in result.stderr
    assert f"error: {bad}: roles.user.rpm: must be a positive integer, got 0" in result.stderr
    assert f"error: {bad}: roles.user.max_token: unknown key 'max_token'" in result.stderr
    assert "Traceback" not in result.stderr


def test_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", EXAMPLE, "--role", "admin", "--model", "claude-opus-4-7", "--max-tokens", "9000"]) == 0
    out = capsys.readouterr().out
    assert "allowed: role 'admin' may use 'claude-opus-4-7'" in out
    assert "rule: roles.power.models 'claude-opus-*' (inherited)" in out
    assert "limit: max_tokens 9000 is clamped to 8192" in out
    assert "limit: rpm 200" in out
    assert main(["explain", EXAMPLE, "--role", "user", "--model", "claude-opus-4-7"]) == 1
    out = capsys.readouterr().out
    assert "denied (model_not_allowed)" in out
    assert "patterns: claude-haiku-*" in out
    assert main(["explain", EXAMPLE, "--role", "viewer", "--model", "claude-haiku-4-5"]) == 1
    assert "denied (api_access_not_allowed)" in capsys.readouterr().out
    assert main(["explain", EXAMPLE, "--role", "root", "--model", "claude-haiku-4-5"]) == 1


def test_explain_a_bad_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", EXAMPLE, "--role", "user", "--model", "claude-haiku-4-5", "--max-tokens", "0"]) == 2
    assert "max_tokens must be between" in capsys.readouterr().err


def test_keys_lists_sources_and_fingerprints_never_keys(tmp_path: Path) -> None:
    key = "sk-ant-api03-cli-keys-test-0000000000000000000000000000-LAST"
    key_file = tmp_path / "prod.key"
    key_file.write_text(key + "\n")
    policy = tmp_path / "rbac.toml"
    policy.write_text(
        f'version = 1\n[workspaces.production]\napi_key = {{ file = "{key_file}" }}\n'
        '[workspaces.development]\napi_key = { env = "CLAUDE_RBAC_TEST_MISSING_KEY" }\n'
        '[roles.user]\nmodels = ["claude-haiku-*"]\nworkspace = "production"\n'
    )
    result = run("keys", str(policy))
    assert result.returncode == 1  # one key is missing
    assert f"production: file {key_file}: found  id {fingerprint(key)}" in result.stdout
    assert "development: env CLAUDE_RBAC_TEST_MISSING_KEY: MISSING" in result.stdout
    assert key not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "argv", [["--help"], ["check", "--help"], ["explain", "--help"], ["keys", "--help"], ["demo", "--help"]]
)
def test_help_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    assert "usage: claude-rbac" in capsys.readouterr().out


def help_entries(text: str) -> dict[str, str]:
    """Each argument of an argparse help text and its description ('' when it has none)."""
    entries: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if line.startswith("  ") and not line.startswith("   ") and line.strip():  # an argument
            name, _, described = line.strip().partition("  ")
            entries[name] = described.strip()
        elif name and line.startswith("      ") and line.strip() and not entries[name]:  # description below it
            entries[name] = line.strip()
        elif not line.startswith(" "):
            name = ""
    return entries


@pytest.mark.parametrize("command", ["check", "explain", "keys", "demo"])
def test_every_flag_says_what_it_is_for(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    entries = help_entries(capsys.readouterr().out)
    assert "-h, --help" in entries
    assert len(entries) > 1
    assert [name for name, described in entries.items() if not described] == []


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"claude-rbac {claude_rbac.__version__}"


def test_no_command_is_a_usage_error() -> None:
    result = run()
    assert result.returncode == 2
    assert "usage: claude-rbac" in result.stderr


def test_a_missing_file_is_a_clean_error(tmp_path: Path) -> None:
    result = run("check", str(tmp_path / "nope.toml"))
    assert result.returncode == 1
    assert "cannot read the policy file" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "vera (viewer) | haiku, 100 tokens       | 403 AccessDenied     | api_access_not_allowed" in out
    assert "clamped" in out
    assert "429 RateLimited" in out
    assert "max_tokens.effective=512" in out
    assert "every denial was decided before sending" in out
