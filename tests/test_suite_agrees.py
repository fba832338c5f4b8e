"""``claude-rbac test`` and the governed client make the same decision: every case of the example suites,
replayed through both (the approach of test_explain_agrees.py, for whole suites).

The runtime side is a real governed client against FakeClaude over HTTP, its decision read from the
``claude_rbac.authorize`` span and the body FakeClaude received; the CLI side is what ``claude-rbac test``
wrote in its JUnit XML for the same case. They agree on the decision, the reason, the max_tokens sent and
the policy revision, whether or not the case's own expectation holds (the failing suite's do not).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from claude_rbac import RBAC, Policy, Principal, RBACError
from claude_rbac.cli import main
from claude_rbac.policy import Case, read_suite
from claude_rbac.policy._suite import known_request_fields
from claude_rbac.testing import FakeClaude

EXAMPLES = Path(__file__).parents[1] / "examples"
POLICY = EXAMPLES / "rbac.toml"
SUITES = [EXAMPLES / "rbac_test.toml", EXAMPLES / "rbac_test_failing.toml"]
KEY = "sk-ant-api03-suite-agrees-00000000000000000000000000-SUIT"
STABLE_FIELDS = {"model", "max_tokens", "messages", "stream", "system", "metadata", "tools", "tool_choice", "thinking"}
Outcome = tuple[str, str, int | None, str]


def runnable_cases() -> list[tuple[Path, Case]]:
    """The cases ``claude-rbac test`` decides (not those it reports as errors: an unknown field or role)."""
    roles = Policy.from_file(POLICY).roles
    return [
        (path, case)
        for path in SUITES
        for case in read_suite(path).cases
        if not case.problems and (case.role in roles or case.expect.reason == "unknown_role")
    ]


def send(rbac: RBAC, case: Case) -> None:
    client = rbac.client(Principal("suite", case.role), scope=case.scope)
    request: dict[str, Any] = dict(case.request)
    if case.operation == "messages.batches.create":
        client.messages.batches.create(**request)
        return
    request.setdefault("messages", [{"role": "user", "content": "?"}])
    if case.operation == "messages.count_tokens":
        client.messages.count_tokens(**request)
        return
    messages = client.messages if set(request) <= STABLE_FIELDS else client.beta.messages
    answer = messages.create(**request)
    if request.get("stream"):
        for _ in answer:
            pass


def at_runtime(rbac: RBAC, fake: FakeClaude, exporter: InMemorySpanExporter, case: Case) -> Outcome:
    exporter.clear()
    before = len(fake.requests)
    try:
        send(rbac, case)
    except RBACError:
        assert len(fake.requests) == before, "a denial sent nothing"
    (span,) = [span for span in exporter.get_finished_spans() if span.name == "claude_rbac.authorize"]
    attributes = dict(span.attributes or {})
    effective = attributes.get("claude_rbac.max_tokens.effective")
    if attributes["claude_rbac.decision"] == "allow" and case.operation != "messages.count_tokens":
        body = fake.requests[-1].json
        sent = body["requests"][0]["params"] if case.operation == "messages.batches.create" else body
        assert sent["max_tokens"] == effective
    return (
        str(attributes["claude_rbac.decision"]),
        str(attributes["claude_rbac.decision.reason"]),
        effective if isinstance(effective, int) else None,
        str(attributes["claude_rbac.policy.revision"]),
    )


def from_cli(tmp_path: Path, suite: Path) -> dict[str, Outcome]:
    report = tmp_path / f"{suite.stem}.xml"
    main(["test", str(POLICY), str(suite), "--junit-xml", str(report)])
    found = {}
    for testcase in ET.parse(report).iter("testcase"):
        properties = {item.get("name"): item.get("value") for item in testcase.iter("property")}
        if "claude_rbac.decision" not in properties:
            continue
        effective = properties.get("claude_rbac.max_tokens.effective")
        found[str(testcase.get("name"))] = (
            str(properties["claude_rbac.decision"]),
            str(properties["claude_rbac.decision.reason"]),
            int(effective) if effective is not None else None,
            str(properties["claude_rbac.policy.revision"]),
        )
    return found


def test_every_case_of_the_example_suites_is_decided_alike(
    fake_claude: FakeClaude, span_exporter: InMemorySpanExporter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = runnable_cases()
    assert len(cases) >= 15
    with RBAC(POLICY, api_key=KEY, base_url=fake_claude.url) as rbac:
        runtime = {(path, case.name): at_runtime(rbac, fake_claude, span_exporter, case) for path, case in cases}
    cli = {(path, name): outcome for path in SUITES for name, outcome in from_cli(tmp_path, path).items()}
    capsys.readouterr()
    assert cli == runtime
    outcomes = {(decision, reason) for decision, reason, _, _ in runtime.values()}
    assert {("allow", "allowed"), ("allow", "clamped"), ("deny", "model_not_allowed")} <= outcomes
    assert ("deny", "unknown_role") in outcomes
    assert ("deny", "api_access_not_allowed") in outcomes


def test_the_example_cases_use_only_fields_the_sdk_sends() -> None:
    for _, case in runnable_cases():
        assert set(case.request) <= known_request_fields(case.operation)
