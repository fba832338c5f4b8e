"""The README's reference tables name everything the code can say: every reason code, every audit name.

A reason added to ``errors.REASONS`` or a name added to ``audit.py`` without a line in the README would leave
a user reading an ``error_code`` or a span attribute the documentation never mentions.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from claude_rbac import audit
from claude_rbac.errors import REASONS

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_row(text: str, first_cell: str) -> str:
    (row,) = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    return row


def test_the_errors_table_gives_every_reason_its_class_and_a_meaning() -> None:
    errors = section("Errors")
    for code, reason in REASONS.items():
        row = next((line for line in errors.splitlines() if line.startswith("| `") and f"`{code}`" in line), "")
        assert row.startswith(f"| `{reason.error.__name__}`"), (code, row)
        assert re.search(rf"^- `{code}`: \S", errors, re.M), f"no meaning for {code}"


@pytest.mark.parametrize("document", ["README.md", "docs/audit.md"])
def test_the_decision_reason_attribute_lists_every_reason(document: str) -> None:
    row = table_row((ROOT / document).read_text(), "`claude_rbac.decision.reason`")
    assert [code for code in REASONS if f"`{code}`" not in row] == []


def test_the_audit_section_names_every_attribute_metric_and_event_the_code_writes() -> None:
    trail = section("Audit trail")
    names = [value for name, value in vars(audit).items() if name.isupper() and isinstance(value, str)]
    assert [name for name in names if f"`{name}`" not in trail] == []
