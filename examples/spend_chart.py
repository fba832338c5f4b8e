"""Today's spend as HTML the example apps' admin pages embed: a bar chart as inline SVG, and the exact figures.

Rendered on the server from the RBAC's spend ledger (``rbac.spend_ledger.report()``), the same rows
``claude-rbac spend`` prints: no script, no stylesheet, no font to fetch, so the page works offline.
Every id is escaped: user ids are untrusted.

The table carries each figure as ``data-`` attributes (integer micro-dollars, calls), so tests read the
page's figures without parsing the formatted dollars.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from html import escape

from claude_rbac import RBAC
from claude_rbac.quota import SpendReport

__all__ = ["admin_spend_html", "spend_html"]

Label = Callable[[str], str]

WIDTH = 680
LABEL_WIDTH = 150
BAR_WIDTH = 330
ROW = 26
CHART_USERS = 12
"""Users drawn in the chart (the largest); the table lists every row up to :data:`TABLE_ROWS`."""
TABLE_ROWS = 200
COLOURS = ("#4f6bed", "#e0792e", "#2e9e6b", "#b14fc5", "#c9a227", "#d0463b", "#4aa3c4", "#7a7a7a")
NOT_KEPT = "(not kept)"


def money(amount: Decimal) -> str:
    """Dollars to the micro-dollar, as the ledger keeps them (``$0.001250``)."""
    return f"${amount:.6f}"


def _bars(
    title: str, items: Sequence[tuple[str, str, Decimal, int]], colour_of: dict[str, str], top: int
) -> tuple[list[str], int]:
    """One titled group of bars: (label, role, dollars, calls) each; returns the SVG parts and the next y."""
    parts = [f'<text x="0" y="{top + 16}" font-weight="600" font-size="14">{escape(title)}</text>']
    y = top + 26
    largest = max((amount for _, _, amount, _ in items), default=Decimal(0))
    for label, role, amount, calls in items:
        width = 0 if largest == 0 else max(1, int(BAR_WIDTH * amount / largest))
        shown = label if len(label) <= 22 else label[:21] + "…"
        parts.append(
            f"<g><title>{escape(label)} ({escape(role)}): {money(amount)}, {calls} call{'s' * (calls != 1)}</title>"
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end" font-size="13">{escape(shown)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{width}" height="{ROW - 8}" rx="3"'
            f' fill="{colour_of.get(role, COLOURS[-1])}"/>'
            f'<text x="{LABEL_WIDTH + width + 6}" y="{y + 15}" font-size="12" fill="#333">'
            f"{money(amount)} · {calls} call{'s' * (calls != 1)}</text></g>"
        )
        y += ROW
    if not items:
        parts.append(f'<text x="{LABEL_WIDTH}" y="{y + 15}" font-size="13" fill="#777">no calls yet</text>')
        y += ROW
    return parts, y + 10


def spend_svg(report: SpendReport, *, label: Label = str) -> str:
    """The chart: today's dollars by role, then by user (the largest :data:`CHART_USERS`), coloured by role."""
    roles = report.roles
    colour_of = {total.role: COLOURS[index % (len(COLOURS) - 1)] for index, total in enumerate(roles)}
    by_role = [(total.role, total.role, total.dollars, total.calls) for total in roles]
    by_user = [
        (label(row.principal) if row.principal else NOT_KEPT, row.role, row.dollars, row.calls)
        for row in report.rows[:CHART_USERS]
    ]
    role_parts, y = _bars("By role", by_role, colour_of, 0)
    more = len(report.rows) - CHART_USERS
    user_parts, y = _bars(
        "By user" + (f" (the {CHART_USERS} largest of {len(report.rows)})" if more > 0 else ""), by_user, colour_of, y
    )
    summary = f"Spend on {report.day.isoformat()} (UTC): {money(report.dollars)} in {report.calls} calls"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{y}" viewBox="0 0 {WIDTH} {y}"'
        f' font-family="system-ui, sans-serif" aria-label="{escape(summary)}"><title>{escape(summary)}</title>'
        + "".join(role_parts + user_parts)
        + "</svg>"
    )


def spend_table(report: SpendReport, *, label: Label = str) -> str:
    """Every row (up to :data:`TABLE_ROWS`) and the totals by role, to the micro-dollar."""
    rows = "".join(
        f'<tr data-principal="{escape(row.principal)}" data-role="{escape(row.role)}"'
        f' data-micro-dollars="{row.micro_dollars}" data-calls="{row.calls}"'
        f' data-label="{escape(label(row.principal) if row.principal else NOT_KEPT)}">'
        f"<td>{escape(label(row.principal) if row.principal else NOT_KEPT)}</td><td>{escape(row.role)}</td>"
        f'<td class="num">{money(row.dollars)}</td><td class="num">{row.calls}</td></tr>'
        for row in report.rows[:TABLE_ROWS]
    )
    totals = "".join(
        f'<tr data-role-total="{escape(total.role)}" data-micro-dollars="{total.micro_dollars}"'
        f' data-calls="{total.calls}"><td><b>total, {total.principals} user{"s" * (total.principals != 1)}</b></td>'
        f"<td>{escape(total.role)}</td>"
        f'<td class="num"><b>{money(total.dollars)}</b></td><td class="num">{total.calls}</td></tr>'
        for total in report.roles
    )
    cut = len(report.rows) - TABLE_ROWS
    note = f"<p>… and {cut} more (see <code>claude-rbac spend</code>).</p>" if cut > 0 else ""
    return (
        '<table class="spend"><tr><th>user</th><th>role</th><th class="num">dollars</th><th class="num">calls</th></tr>'
        f"{rows}{totals}</table>{note}"
    )


def spend_html(report: SpendReport, *, label: Label = str) -> str:
    """The admin page's spend section: a heading, the chart and the table. ``label`` names a recorded id."""
    return (
        f'<section id="spend"><h2>Spend today ({report.day.isoformat()}, UTC): {money(report.dollars)}</h2>'
        f"<p>From the spend ledger, as <code>claude-rbac spend</code> prints it; exact to the micro-dollar.</p>"
        f"{spend_svg(report, label=label)}{spend_table(report, label=label)}</section>"
    )


def admin_spend_html(rbac: RBAC, *, label: Label = str) -> str:
    """Today's spend section of an admin page, from ``rbac.spend_ledger`` (or why there is none)."""
    if rbac.spend_ledger is None:
        return '<section id="spend"><p>No spend ledger: this RBAC records costs elsewhere, or not at all.</p></section>'
    return spend_html(rbac.spend_ledger.report(), label=label)
