"""What the example apps' tests check about spend: scripted calls with hand-priced costs, and the admin page's figures.

The three apps' tests make the same calls (``SCRIPTED``) through their own test clients and compare the
figures their admin page shows with the ledger's rows, the CLI's, and the hand-computed ``Decimal`` dollars.
"""

from __future__ import annotations

import re
from decimal import Decimal
from html import unescape
from typing import Any

from claude_rbac.quota import SpendReport

__all__ = ["EXPECTED", "SCRIPTED", "page_figures", "report_figures"]

SCRIPTED: list[tuple[str, dict[str, Any], Decimal]] = [
    # (demo user, the usage FakeClaude answers /api/chat with, its cost by hand on claude-haiku-4-5:
    #  $1 input, $5 output, $1.25 5m cache write, $2 1h cache write, $0.10 cache read, per MTok)
    ("uma", {"input_tokens": 2000, "output_tokens": 400}, Decimal("0.004")),
    (
        "uma",
        {
            "input_tokens": 20,
            "cache_creation_input_tokens": 3000,
            "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
            "cache_read_input_tokens": 10000,
            "output_tokens": 100,
        },
        Decimal("0.00677"),  # 20 + 1250 + 4000 + 1000 + 500 micro-dollars
    ),
    ("paul", {"input_tokens": 5000, "output_tokens": 500}, Decimal("0.0075")),
    ("ada", {"input_tokens": 7, "cache_read_input_tokens": 7, "output_tokens": 0}, Decimal("0.000008")),  # 7.7 up
]
ROLES = {"uma": "user", "paul": "power", "ada": "admin"}

EXPECTED: dict[tuple[str, str], tuple[Decimal, int]] = {}
"""(principal, role) -> (dollars, calls), summed from ``SCRIPTED`` by hand."""
for _user, _, _amount in SCRIPTED:
    _dollars, _calls = EXPECTED.get((_user, ROLES[_user]), (Decimal(0), 0))
    EXPECTED[(_user, ROLES[_user])] = (_dollars + _amount, _calls + 1)

_ROW = re.compile(
    r'<tr data-principal="([^"]*)" data-role="([^"]*)" data-micro-dollars="(\d+)" data-calls="(\d+)"'
    r' data-label="([^"]*)">'
)
_TOTAL = re.compile(r'<tr data-role-total="([^"]*)" data-micro-dollars="(\d+)" data-calls="(\d+)">')

Figures = tuple[dict[tuple[str, str], tuple[Decimal, int]], dict[str, tuple[Decimal, int]]]


def page_figures(html: str, *, labels: bool = False) -> Figures:
    """The admin page's rows ((principal, role) -> (dollars, calls)) and role totals (role -> (dollars, calls)).

    ``labels``: key the rows by the name the page shows rather than the recorded id (Django records its pk)."""
    rows = {
        (unescape(label if labels else who), unescape(role)): (Decimal(micro) / 1_000_000, int(calls))
        for who, role, micro, calls, label in _ROW.findall(html)
    }
    totals = {unescape(role): (Decimal(micro) / 1_000_000, int(calls)) for role, micro, calls in _TOTAL.findall(html)}
    return rows, totals


def report_figures(report: SpendReport) -> Figures:
    """The same figures, from a ledger report."""
    rows = {(row.principal, row.role): (row.dollars, row.calls) for row in report.rows}
    return rows, {total.role: (total.dollars, total.calls) for total in report.roles}
