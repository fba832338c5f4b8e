"""The ``claude-rbac`` command: check, explain, keys and demo.

Exit codes: 0 success (for ``explain``: the call would be allowed), 1 the policy is invalid or the call
would be denied, 2 usage errors. User errors print one clear message, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._version import __version__
from .enforcement import KeyRing
from .errors import PolicyError
from .policy import ModelMatcher, Policy, Principal

__all__ = ["main"]


def _load(path: str) -> Policy:
    return Policy.from_file(path)


def cmd_check(args: argparse.Namespace) -> int:
    try:
        policy = _load(args.policy)
    except PolicyError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in {args.policy}", file=sys.stderr)
        return 1
    roles = ", ".join(policy.roles) or "(none: everything is denied)"
    print(f"{args.policy}: OK, {len(policy.roles)} role(s): {roles}")
    return 0


def _granting_rules(policy: Policy, role_name: str, model: str) -> list[str]:
    role = policy.roles[role_name]
    rules = []
    for name in (role_name, *sorted(role.ancestors)):
        for pattern in policy.roles[name].own_models:
            if ModelMatcher([pattern])(model):
                rules.append(f"roles.{name}.models {pattern!r}" + ("" if name == role_name else " (inherited)"))
    return rules


def cmd_explain(args: argparse.Namespace) -> int:
    try:
        policy = _load(args.policy)
    except PolicyError as exc:
        print(f"error: the policy is invalid:\n{exc}", file=sys.stderr)
        return 1
    if args.role not in policy.roles:
        print(f"denied: role {args.role!r} is not in {args.policy} (roles: {', '.join(policy.roles)})")
        return 1
    try:
        decision = policy.decide(
            Principal("explain", args.role),
            model=args.model,
            **({"max_tokens": args.max_tokens} if args.max_tokens is not None else {}),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    role = policy.roles[args.role]
    if not decision.allowed:
        print(f"denied ({decision.reason}): {decision.message}")
        if decision.reason == "api_access_not_allowed":
            print(f"  rule: roles.{args.role}.allowed is false" if role.models else "  rule: the role grants no model")
        elif decision.reason == "model_not_allowed":
            print(f"  rule: no pattern of roles.{args.role}.models (with inherited ones) matches {args.model!r}")
            print(f"  patterns: {', '.join(role.models) or '(none)'}")
        elif decision.reason == "max_tokens_exceeded":
            print(f'  limit: max_tokens {role.max_tokens} (on_excess = "reject")')
        return 1
    print(f"allowed: role {args.role!r} may use {args.model!r}")
    for rule in _granting_rules(policy, args.role, args.model):
        print(f"  rule: {rule}")
    if decision.clamped:
        print(
            f"  limit: max_tokens {decision.max_tokens_requested} is clamped to {decision.max_tokens_effective}"
            ' (on_excess = "clamp")'
        )
    elif role.max_tokens is not None:
        print(f"  limit: max_tokens up to {role.max_tokens}")
    for name, value in (
        ("rpm", role.rpm),
        ("tpm", role.tpm),
        ("budget.day", role.budget.day),
        ("budget.month", role.budget.month),
    ):
        if value is not None:
            print(f"  limit: {name} {value}")
    if role.workspace:
        print(f"  workspace: {role.workspace}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    try:
        policy = _load(args.policy)
    except PolicyError as exc:
        print(f"error: the policy is invalid:\n{exc}", file=sys.stderr)
        return 1
    ring = KeyRing(policy.settings.workspaces, service=args.service, require_keys=False)
    missing = 0
    for active in ring.active():
        where = active.source.describe() if active.source is not None else "(no source)"
        found = "found" if active.key else "MISSING"
        missing += active.key is None
        base = f"  base_url {active.base_url}" if active.base_url else ""
        print(f"{active.workspace}: {where}: {found}" + (f"  id {active.key_id}" if active.key_id else "") + base)
    return 1 if missing else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .testing._demo import run_demo

    return run_demo(rpm_burst=args.burst)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="claude-rbac", description="Role-based access control for Claude.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="validate a policy file", description="Validate a policy file.")
    check.add_argument("policy", metavar="POLICY", help="a .toml, .json or .yaml policy")
    check.set_defaults(run=cmd_check)

    explain = commands.add_parser(
        "explain", help="say whether a role may make a call, and why", description="Explain one decision."
    )
    explain.add_argument("policy", metavar="POLICY", help="a .toml, .json or .yaml policy")
    explain.add_argument("--role", required=True, help="the role making the call, e.g. user")
    explain.add_argument("--model", required=True, help="the model it asks for, e.g. claude-haiku-4-5")
    explain.add_argument(
        "--max-tokens",
        type=int,
        dest="max_tokens",
        help="the max_tokens it asks for (without it, only the model is checked)",
    )
    explain.set_defaults(run=cmd_explain)

    keys = commands.add_parser(
        "keys",
        help="list workspaces, key sources and fingerprints (never a key)",
        description="List workspaces and their key sources; exit 1 when a key is missing.",
    )
    keys.add_argument("policy", metavar="POLICY", help="a .toml, .json or .yaml policy")
    keys.add_argument("--service", help="the service whose key to look up (RBAC(service=...))")
    keys.set_defaults(run=cmd_keys)

    demo = commands.add_parser(
        "demo", help="run each default role against a local FakeClaude", description="An offline demo."
    )
    demo.add_argument("--burst", type=int, default=11, help="calls the user role makes to hit its RPM limit")
    demo.set_defaults(run=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
