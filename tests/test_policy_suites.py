"""Policy test suites: ``claude-rbac test`` on the example suites, its JUnit XML, the problems a suite can
have, and the pytest plugin running a user's ``rbac_test.toml`` with no code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from claude_rbac.cli import main
from claude_rbac.policy import Policy, SuiteError, read_suite, run_case, suite_policy_path

EXAMPLES = Path(__file__).parents[1] / "examples"
POLICY = str(EXAMPLES / "rbac.toml")
PASSING = str(EXAMPLES / "rbac_test.toml")
FAILING = str(EXAMPLES / "rbac_test_failing.toml")
CASES = len(read_suite(PASSING).cases)


def test_the_example_suite_passes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    assert main(["test", POLICY, PASSING, "--junit-xml", str(report)]) == 0
    out = capsys.readouterr().out
    revision = Policy.from_file(POLICY).revision
    assert CASES >= 20
    assert f"{CASES} case(s) against {POLICY} (revision {revision})" in out
    assert "PASS  a user's max_tokens is clamped to 512" in out
    assert out.rstrip().endswith(f"{CASES} passed, 0 failed, 0 error(s)")
    (suite,) = ET.parse(report).getroot().iter("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == (str(CASES), "0", "0")
    assert [case.get("name") for case in suite.iter("testcase")] == [case.name for case in read_suite(PASSING).cases]


def test_the_failing_suite_fails_and_says_why(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    assert main(["test", POLICY, FAILING, "--junit-xml", str(report)]) == 1
    out = capsys.readouterr().out
    assert "FAIL   a user may use opus (it may not: fails)" in out
    assert f"FAIL: a user may use opus (it may not: fails) ({FAILING}:12)" in out
    assert "    expected: allow\n    decided:  deny (model_not_allowed)\n" in out
    assert "    message:  Role 'user' may not use model 'claude-opus-4-7'." in out
    assert "    expected: allow (clamped) max_tokens 8192\n    decided:  allow (clamped) max_tokens 4096" in out
    assert "the policy has no role 'ghost' (roles: viewer, user, power, admin)" in out
    assert "request: unknown field 'modle' (messages.create sends no such field)" in out
    assert out.rstrip().endswith("1 passed, 2 failed, 2 error(s)")
    (suite,) = ET.parse(report).getroot().iter("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("5", "2", "2")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    failure = cases["a user may use opus (it may not: fails)"].find("failure")
    assert failure is not None
    assert "decided:  deny (model_not_allowed)" in (failure.text or "")
    error = cases["a misspelt request field (an error)"].find("error")
    assert error is not None
    assert "unknown field 'modle'" in (error.get("message") or "")


def test_the_command_runs_as_installed() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "claude_rbac.cli", "test", POLICY, PASSING, FAILING],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"{CASES} passed, 0 failed, 0 error(s)" in result.stdout
    assert "1 passed, 2 failed, 2 error(s)" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[[case]\n", "cannot parse the suite"),
        ('version = 1\n[[case]]\nname = "x"\n[defaults]\nrole = "user"\n', "suite: unknown key 'defaults'"),
        ("version = 1\n", "no cases: add at least one [[case]] table"),
        ('version = 2\n[[case]]\nname = "x"\n', "version: this release reads suite version 1"),
    ],
)
def test_a_broken_suite_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    suite = tmp_path / "rbac_test.toml"
    suite.write_text(content)
    with pytest.raises(SuiteError, match=r"rbac_test\.toml"):
        read_suite(suite)
    assert main(["test", POLICY, str(suite)]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ('role = "user"\nrequest = { model = "claude-haiku-4-5" }', "expect: must be a table"),
        ('role = "user"\nrequest = {}\nexpect = { decision = "permit" }', "expect.decision: must be 'allow' or 'deny'"),
        ('role = "user"\nrequest = {}\nexpect = { reason = "model_denied" }', "expect.reason: unknown reason"),
        ('role = "user"\nrequest = {}\nexpect = { max_tokens = "512" }', "expect.max_tokens: must be an integer"),
        ('role = "user"\nrequest = {}\nexpect = { decision = "allow", why = 1 }', "expect: unknown key 'why'"),
        ('request = {}\nexpect = { decision = "allow" }', "role: the role making the call"),
        ('role = "user"\nexpect = { decision = "allow" }', "request: the body the SDK would send"),
        ('role = "user"\nrequest = {}\nexpect = { decision = "allow" }\nprincipal = "x"', "case: unknown key"),
        ('role = "user"\nrequest = {}\nexpect = { decision = "allow" }\noperation = "models.list"', "operation: must"),
        ('role = "user"\nrequest = {}\nexpect = { decision = "allow" }\nscope = { rpm = 5 }', "scope: unknown key"),
        ('role = "user"\nrequest = {}\nexpect = { decision = "allow" }\nscope = { max_tokens = 0 }', "scope.max_"),
        ('role = "user"\nrequest = {}\nexpect = { decision = "allow" }\nscope = { models = ["A B"] }', "scope.models"),
    ],
)
def test_a_case_that_cannot_run_is_an_error(tmp_path: Path, case: str, problem: str) -> None:
    suite = tmp_path / "rbac_test.toml"
    suite.write_text(f'version = 1\n[[case]]\nname = "the case"\n{case}\n')
    (parsed,) = read_suite(suite).cases
    outcome = run_case(Policy.from_file(POLICY), parsed)
    assert outcome.status == "error"
    assert problem in outcome.detail


def test_two_cases_with_one_name_are_an_error(tmp_path: Path) -> None:
    suite = tmp_path / "rbac_test.toml"
    case = '[[case]]\nname = "same"\nrole = "user"\nrequest = { model = "claude-haiku-4-5", max_tokens = 5 }\n'
    suite.write_text(case + 'expect = { decision = "allow" }\n' + case + 'expect = { decision = "allow" }\n')
    first, second = read_suite(suite).cases
    assert first.problems == ()
    assert second.problems == ("name: another case has this name",)


def test_the_suite_finds_its_policy(tmp_path: Path) -> None:
    assert suite_policy_path(tmp_path / "rbac_test.toml") == str(tmp_path / "rbac.toml")
    (tmp_path / "team.yaml").write_text("version: 1\n")
    assert suite_policy_path(tmp_path / "team_test.toml") == str(tmp_path / "team.yaml")
    assert suite_policy_path(tmp_path / "x_test.toml", "policies/main.toml") == str(tmp_path / "policies/main.toml")


def pytest_in(project: Path) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environment,
    )


def test_pytest_runs_a_projects_policy_suite_with_no_code(tmp_path: Path) -> None:
    shutil.copy(POLICY, tmp_path / "rbac.toml")
    shutil.copy(PASSING, tmp_path / "rbac_test.toml")
    (tmp_path / "lint_test.toml").write_text('[tool]\nname = "another tool\'s file, not a suite"\n')
    result = pytest_in(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{CASES} passed" in result.stdout


def test_pytest_reports_a_failing_case_readably(tmp_path: Path) -> None:
    shutil.copy(POLICY, tmp_path / "rbac.toml")
    shutil.copy(FAILING, tmp_path / "rbac_test.toml")
    result = pytest_in(tmp_path)
    assert result.returncode == 1
    assert "4 failed, 1 passed" in result.stdout
    assert "FAILED rbac_test.toml::a user may use opus (it may not: fails)" in result.stdout
    assert "  expected: allow\n  decided:  deny (model_not_allowed)\n" in result.stdout
    assert "Traceback" not in result.stdout


def test_pytest_reports_a_broken_policy_as_a_collection_error(tmp_path: Path) -> None:
    (tmp_path / "rbac.toml").write_text('version = 1\n[roles.user]\nmodels = ["claude-haiku-*"]\nrpm = 0\n')
    shutil.copy(PASSING, tmp_path / "rbac_test.toml")
    result = pytest_in(tmp_path)
    assert result.returncode == 2
    assert "the policy it tests is invalid" in result.stdout
    assert "roles.user.rpm: must be a positive integer, got 0" in result.stdout
