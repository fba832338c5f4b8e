"""pytest collects policy test suites (``*_test.toml``): one test item per case, decided like ``claude-rbac test``.

A ``*_test.toml`` file is collected only when it is a suite (it has ``[[case]]`` tables), so another tool's
file of the same shape of name is left alone. The policy is the one the suite names (``policy = "..."``)
or its sibling without ``_test`` (``rbac_test.toml`` tests ``rbac.toml``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..errors import PolicyError
from ..policy import Case, Outcome, Policy, SuiteError, read_suite, run_case, suite_policy_path

__all__ = ["PolicyCaseItem", "PolicySuiteFile", "is_policy_suite"]

SUITE_SUFFIX = "_test.toml"
_CASE_TABLE = re.compile(rb"^\s*(\[\[\s*case\s*\]\]|case\s*=)", re.M)


def is_policy_suite(path: Path) -> bool:
    """Whether ``path`` is a policy test suite to collect: named ``*_test.toml`` and holding cases."""
    if not path.name.endswith(SUITE_SUFFIX):
        return False
    try:
        return _CASE_TABLE.search(path.read_bytes()) is not None
    except OSError:
        return False


class PolicyCaseFailure(Exception):
    """A case whose decision is not the one it expects (or that cannot run); the message is the report."""


class PolicySuiteFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        try:
            suite = read_suite(self.path)
        except SuiteError as exc:
            raise self.CollectError(str(exc)) from None
        policy_path = suite_policy_path(self.path, suite.policy)
        try:
            policy = Policy.from_file(policy_path)
        except PolicyError as exc:
            raise self.CollectError(f"{self.path}: the policy it tests is invalid:\n{exc}") from None
        for case in suite.cases:
            yield PolicyCaseItem.from_parent(self, name=case.name, case=case, policy=policy)


class PolicyCaseItem(pytest.Item):
    def __init__(self, *, case: Case, policy: Policy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.policy = policy

    def runtest(self) -> None:
        outcome = run_case(self.policy, self.case)
        if outcome.status != "pass":
            raise PolicyCaseFailure(_report(outcome, self.policy))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, PolicyCaseFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = self.case.line - 1 if self.case.line else None
        return self.path, line, f"policy case: {self.case.name}"


def _report(outcome: Outcome, policy: Policy) -> str:
    case = outcome.case
    lines = [f"policy case {case.name!r} (role {case.role!r}) against {policy.source} (revision {policy.revision})"]
    if outcome.status == "error":
        lines.extend(f"  {problem}" for problem in outcome.detail.split("; "))
        return "\n".join(lines)
    lines.append(f"  expected: {case.expect.describe()}")
    lines.append(f"  decided:  {outcome.got}")
    if outcome.decision is not None and outcome.decision.message:
        lines.append(f"  message:  {outcome.decision.message}")
    return "\n".join(lines)
