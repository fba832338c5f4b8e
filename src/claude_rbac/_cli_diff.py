"""``claude-rbac diff OLD NEW``: what each role gains and loses, and which changes come through inheritance.

Exit codes: 0 (whatever changed, unless a gate says otherwise); 1 with ``--exit-code`` when anything changed,
or when a ``--fail-on-gain`` gate matched; 2 an invalid policy or usage error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .errors import PolicyError
from .policy import Change, Policy, PolicyDiff, RoleDiff, diff_policies, dollars_of, gain_hits, limit_settings

__all__ = ["add_diff_command", "render_diff"]

_MARKS = {"gain": "+", "loss": "-", "change": "~"}


def _shown(value: Any, other: Any, setting: str = "") -> str:
    if "spend." in setting and isinstance(value, int) and not isinstance(value, bool):
        return f"${dollars_of(value)}"  # stored in micro-dollars, written in dollars
    if value is None or value == "":
        return "unlimited" if isinstance(other, int) and not isinstance(other, bool) else "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "(none)"
    return str(value)


def _lines(change: Change) -> list[str]:
    where = f"  (inherited from {', '.join(change.inherited_from)})" if change.inherited_from else ""
    if change.gained or change.lost:
        listed = change.before if isinstance(change.before, list) else []
        lines = []
        for items, mark in ((change.gained, "+"), (change.lost, "-")):
            for item in items:
                now_listed = item not in listed
                expected = mark == "+"
                note = "" if now_listed == expected else (" (added)" if now_listed else " (removed)")
                lines.append(f"  {mark} {change.setting} {item}{note}{where}")
        return lines
    before = _shown(change.before, change.after, change.setting)
    after = _shown(change.after, change.before, change.setting)
    return [f"  {_MARKS[change.direction]} {change.setting} {before} -> {after}{where}"]


def _added_or_removed(diff: RoleDiff) -> list[str]:
    mark = "+" if diff.status == "added" else "-"
    lines, unlimited = [], []
    for change in diff.changes:
        value = change.after if diff.status == "added" else change.before
        if value is None and change.setting in limit_settings():
            unlimited.append(change.setting)
        elif value not in (None, [], "", False):
            lines.append(f"  {mark} {change.setting} {_shown(value, None, change.setting)}")
    if unlimited:
        lines.append(f"  {mark} unlimited: {', '.join(unlimited)}")
    return lines


def render_diff(diff: PolicyDiff, old: Policy, new: Policy) -> list[str]:
    lines = [f"{old.source} (revision {old.revision}) -> {new.source} (revision {new.revision})"]
    if not diff.changed:
        lines.append("no changes: every role has the same grants")
        return lines
    lines.append("(+ a gain, - a loss, ~ a change that is neither)")
    for role in diff.roles:
        if role.status != "changed":
            lines.append(f"role {role.role}: {role.status}")
            lines.extend(_added_or_removed(role))
            continue
        suffix = " (only through inheritance)" if role.inherited_only else ""
        lines.append(f"role {role.role}{suffix}:")
        for change in role.changes:
            lines.extend(_lines(change))
    if diff.settings:
        lines.append("policy-wide settings:")
        for change in diff.settings:
            lines.extend(_lines(change))
    inherited = [role.role for role in diff.roles if role.inherited_only]
    summary = f"{len(diff.roles)} role(s) changed"
    if diff.roles:
        summary += f": {', '.join(role.role for role in diff.roles)}"
    if inherited:
        summary += f" ({', '.join(inherited)} only through inheritance)"
    lines.append(summary)
    return lines


def _gate(spec: str) -> tuple[str, str | None]:
    kind, _, pattern = spec.partition("=")
    if not kind.strip():
        raise argparse.ArgumentTypeError(f"expected SETTING or SETTING=PATTERN, got {spec!r}")
    return kind.strip(), pattern.strip() or None


def cmd_diff(args: argparse.Namespace) -> int:
    policies = []
    for path in (args.old, args.new):
        try:
            policies.append(Policy.from_file(path))
        except PolicyError as exc:
            print(f"error: {path} is invalid:\n{exc}", file=sys.stderr)
            return 2
    old, new = policies
    diff = diff_policies(old, new)
    print("\n".join(render_diff(diff, old, new)))
    failed = bool(args.exit_code and diff.changed)
    for kind, pattern in args.fail_on_gain:
        for hit in gain_hits(diff, kind, pattern):
            gate = f"{kind}={pattern}" if pattern else kind
            print(f"gate --fail-on-gain {gate}: {hit}")
            failed = True
    return 1 if failed else 0


def add_diff_command(commands: Any) -> None:
    diff = commands.add_parser(
        "diff",
        help="what each role gains and loses between two policies",
        description="Compare two policies role by role (as compiled: inheritance included).",
    )
    diff.add_argument("old", metavar="OLD", help="the policy in force")
    diff.add_argument("new", metavar="NEW", help="the proposed policy")
    diff.add_argument("--exit-code", action="store_true", help="exit 1 when anything changed (a CI gate)")
    diff.add_argument(
        "--fail-on-gain",
        dest="fail_on_gain",
        metavar="SETTING[=PATTERN]",
        type=_gate,
        action="append",
        default=[],
        help="exit 1 when a role gains this: models=claude-opus-* (a model pattern that may admit opus),"
        " max_tokens, rpm, budget, allowed, mode=shadow... (repeatable)",
    )
    diff.set_defaults(run=cmd_diff)
