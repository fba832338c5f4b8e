"""``claude-rbac test POLICY SUITE...``: run policy test suites, print a pass/fail table, write JUnit XML for CI.

Exit codes: 0 every case passed; 1 a case failed or could not run (an unknown role or field), or the policy
or a suite is invalid; 2 usage errors.
"""

from __future__ import annotations

import argparse
import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import PolicyError
from .policy import Case, Outcome, Policy, Suite, SuiteError, read_suite, run_case

__all__ = ["add_test_command", "junit_xml"]

_LABELS = {"pass": "PASS", "fail": "FAIL", "error": "ERROR"}


def _request_summary(case: Case) -> str:
    request = case.request
    if case.operation == "messages.batches.create":
        requests = request.get("requests")
        return f"batch of {len(requests) if isinstance(requests, list) else '?'}"
    parts = [str(request.get("model", "?"))]
    if "max_tokens" in request:
        parts.append(f"max_tokens={request['max_tokens']}")
    if request.get("stream") is True:
        parts.append("stream")
    parts.extend(f"+{key}" for key in request if key not in ("model", "max_tokens", "stream", "messages"))
    if case.operation == "messages.count_tokens":
        parts.insert(0, "count_tokens")
    scope = case.scope
    if scope.narrows:
        route = [f"models={','.join(models)}" for models in scope.model_sets]
        route += [f"max_tokens={scope.max_tokens}"] if scope.max_tokens is not None else []
        route += [f"{key}={','.join(patterns) or '(none)'}" for key, patterns in scope.field_sets]
        parts.append(f"(route: {' '.join(route)})")
    return " ".join(parts)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def render(suite: Suite, policy: Policy, outcomes: Sequence[Outcome]) -> list[str]:
    """The readable report of one suite: a row per case, then what went wrong with each failure."""
    lines = [f"{suite.path}: {len(outcomes)} case(s) against {policy.source} (revision {policy.revision})"]
    rows = [["", "case", "role", "request", "decided"]]
    for outcome in outcomes:
        case = outcome.case
        rows.append([_LABELS[outcome.status], case.name, case.role or "?", _request_summary(case), outcome.got])
    lines.extend(f"  {line}" for line in _table(rows))
    for outcome in outcomes:
        if outcome.status == "pass":
            continue
        where = f"{suite.path}:{outcome.case.line}" if outcome.case.line else suite.path
        lines.append(f"{_LABELS[outcome.status]}: {outcome.case.name} ({where})")
        if outcome.status == "error":
            lines.extend(f"    {problem}" for problem in outcome.detail.split("; "))
            continue
        lines.append(f"    expected: {outcome.case.expect.describe()}")
        lines.append(f"    decided:  {outcome.got}")
        if outcome.decision is not None and outcome.decision.message:
            lines.append(f"    message:  {outcome.decision.message}")
    passed = sum(outcome.status == "pass" for outcome in outcomes)
    failed = sum(outcome.status == "fail" for outcome in outcomes)
    errors = len(outcomes) - passed - failed
    lines.append(f"{passed} passed, {failed} failed, {errors} error(s)")
    return lines


def _properties(outcome: Outcome, policy: Policy) -> Mapping[str, Any]:
    found: dict[str, Any] = {"claude_rbac.policy.revision": policy.revision}
    decision = outcome.decision
    if decision is not None:
        found["claude_rbac.decision"] = "allow" if decision.allowed else "deny"
        found["claude_rbac.decision.reason"] = decision.reason
        if decision.max_tokens_effective is not None:
            found["claude_rbac.max_tokens.effective"] = decision.max_tokens_effective
    return found


def junit_xml(results: Sequence[tuple[Suite, Policy, Sequence[Outcome]]]) -> bytes:
    """JUnit XML (one testsuite per suite file, one testcase per case) as CI systems read it."""
    root = ET.Element("testsuites", name="claude-rbac test")
    for suite, policy, outcomes in results:
        element = ET.SubElement(
            root,
            "testsuite",
            name=suite.path,
            tests=str(len(outcomes)),
            failures=str(sum(outcome.status == "fail" for outcome in outcomes)),
            errors=str(sum(outcome.status == "error" for outcome in outcomes)),
            skipped="0",
            time="0",
        )
        classname = os.path.basename(suite.path).removesuffix(".toml").replace(".", "_")
        for outcome in outcomes:
            case = ET.SubElement(element, "testcase", classname=classname, name=outcome.case.name, time="0")
            if outcome.case.line:
                case.set("file", suite.path)
                case.set("line", str(outcome.case.line))
            properties = ET.SubElement(case, "properties")
            for name, value in _properties(outcome, policy).items():
                ET.SubElement(properties, "property", name=name, value=str(value))
            if outcome.status == "fail":
                expected = outcome.case.expect.describe()
                failure = ET.SubElement(case, "failure", message=f"expected {expected}", type="fail")
                failure.text = f"expected: {expected}\ndecided:  {outcome.got}"
                if outcome.decision is not None and outcome.decision.message:
                    failure.text += f"\nmessage:  {outcome.decision.message}"
            elif outcome.status == "error":
                error = ET.SubElement(case, "error", message=outcome.detail, type="error")
                error.text = outcome.detail
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def cmd_test(args: argparse.Namespace) -> int:
    try:
        policy = Policy.from_file(args.policy)
    except PolicyError as exc:
        print(f"error: the policy is invalid:\n{exc}", file=sys.stderr)
        return 1
    results: list[tuple[Suite, Policy, Sequence[Outcome]]] = []
    broken = 0
    for path in args.suites:
        try:
            suite = read_suite(path)
        except SuiteError as exc:
            print(f"error: {exc}", file=sys.stderr)
            broken += 1
            continue
        outcomes = [run_case(policy, case) for case in suite.cases]
        results.append((suite, policy, outcomes))
        print("\n".join(render(suite, policy, outcomes)))
    if args.junit_xml:
        with open(args.junit_xml, "wb") as fh:
            fh.write(junit_xml(results))
    failed = broken + sum(outcome.status != "pass" for _, _, outcomes in results for outcome in outcomes)
    return 1 if failed else 0


def add_test_command(commands: Any) -> None:
    test = commands.add_parser(
        "test",
        help="run policy test suites (TOML cases: role, request, expected decision)",
        description="Run policy test suites against a policy; exit 1 when a case fails.",
    )
    test.add_argument("policy", metavar="POLICY", help="a .toml, .json or .yaml policy")
    test.add_argument("suites", metavar="SUITE", nargs="+", help="a suite file, e.g. rbac_test.toml")
    test.add_argument("--junit-xml", dest="junit_xml", metavar="PATH", help="also write the results as JUnit XML")
    test.set_defaults(run=cmd_test)
