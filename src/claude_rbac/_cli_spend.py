"""``claude-rbac spend --storage URI``: one UTC day of the spend ledger, by principal and by role.

Exit codes: 0 the day was read (an empty day too); 1 the storage could not be read; 2 usage errors (no
storage, ``memory://``, a bad date).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from .errors import PolicyError
from .quota import SpendLedger, SpendReport, StorageFailure

__all__ = ["add_spend_command", "render_report"]

NOT_KEPT = "(not kept)"
"""What a row without a principal id shows: the RBAC ran with ``audit_user_id="off"``."""


def _printable(value: str) -> str:
    """An id as it may be printed: user ids are untrusted, and a terminal obeys escape sequences."""
    return "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in value) or NOT_KEPT


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    return [line(header), *(line(row) for row in rows)]


def render_report(report: SpendReport) -> str:
    """The report as the command prints it: principals by dollars, then the totals by role."""
    day = report.day.isoformat()
    if not report.rows:
        return f"No spend recorded on {day} (UTC)."
    principals = [[_printable(row.principal), row.role, f"{row.dollars:.6f}", str(row.calls)] for row in report.rows]
    roles = [[total.role, f"{total.dollars:.6f}", str(total.calls), str(total.principals)] for total in report.roles]
    roles.append(["total", f"{report.dollars:.6f}", str(report.calls), ""])
    lines = [f"Spend on {day} (UTC), US dollars", ""]
    lines += _table(["principal", "role", "dollars", "calls"], principals, right=(2, 3))
    lines += ["", "By role", ""]
    lines += _table(["role", "dollars", "calls", "principals"], roles, right=(1, 2, 3))
    return "\n".join(lines)


def _day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {value!r}") from None


def cmd_spend(args: argparse.Namespace) -> int:
    storage = args.storage or os.environ.get("CLAUDE_RBAC_STORAGE")
    if not storage:
        print(
            "error: name the storage the app uses: --storage redis://... (or set CLAUDE_RBAC_STORAGE)", file=sys.stderr
        )
        return 2
    if storage.split("://", 1)[0].lower() == "memory":
        print(
            "error: a memory:// ledger lives inside the app's process; read it there (RBAC.spend_ledger),"
            " or point --storage at the app's Redis",
            file=sys.stderr,
        )
        return 2
    try:
        ledger = SpendLedger(storage, key_prefix=args.key_prefix)
    except (PolicyError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        report = ledger.report(args.day)
    except StorageFailure as exc:
        print(f"error: could not read the spend ledger: {exc}", file=sys.stderr)
        return 1
    finally:
        ledger.close()
    print(json.dumps(report.as_dict(), indent=2) if args.json else render_report(report))
    return 0


def add_spend_command(commands: Any) -> None:
    spend = commands.add_parser(
        "spend",
        help="what each principal and role spent on a UTC day (the spend ledger)",
        description="Print one UTC day of the spend ledger: principals by dollars, then totals by role.",
    )
    spend.add_argument(
        "--storage",
        metavar="URI",
        help="the storage the app's RBAC uses, e.g. redis://127.0.0.1:6379/0 (default: $CLAUDE_RBAC_STORAGE)",
    )
    spend.add_argument(
        "--key-prefix",
        dest="key_prefix",
        default=os.environ.get("CLAUDE_RBAC_KEY_PREFIX") or "claude_rbac",
        help="the app's RBAC(key_prefix=...) (default: $CLAUDE_RBAC_KEY_PREFIX, else claude_rbac)",
    )
    spend.add_argument("--day", type=_day, metavar="YYYY-MM-DD", help="the UTC day to show (default: today, UTC)")
    spend.add_argument(
        "--json", action="store_true", help="print JSON: dollars as exact decimal strings beside integer micro-dollars"
    )
    spend.set_defaults(run=cmd_spend)
