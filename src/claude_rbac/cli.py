"""The ``claude-rbac`` command: check, explain, test, diff, keys, spend and demo.

Exit codes: 0 success (for ``explain``: the call would be allowed), 1 the policy is invalid or the call
would be denied, 2 usage errors. User errors print one clear message, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Sequence

import anthropic
from anthropic.types import Model

from ._cli_diff import add_diff_command
from ._cli_spend import add_spend_command
from ._cli_test import add_test_command
from ._version import __version__
from .enforcement import KeyRing
from .errors import PolicyError
from .policy import CallPlan, ModelMatcher, Policy, Principal, Role, dollars_of, estimate_input_tokens, probe
from .policy._reserve import reserve
from .policy.prices import MissingPrice

__all__ = ["main"]


def _load(path: str) -> Policy:
    return Policy.from_file(path)


def known_model_ids() -> frozenset[str]:
    """The model ids the installed anthropic SDK knows (its ``Model`` type's literals)."""
    found: set[str] = set()

    def walk(annotation: object) -> None:
        for argument in typing.get_args(annotation):
            if typing.get_origin(argument) is typing.Literal:
                found.update(value for value in typing.get_args(argument) if isinstance(value, str))
            elif argument is not str:
                walk(argument)

    walk(Model)
    return frozenset(found)


def _unmatched_patterns(policy: Policy) -> list[tuple[str, str]]:
    """(role, pattern) for each pattern of a role's own that matches none of the SDK's known model ids."""
    known = known_model_ids()
    return [
        (name, pattern)
        for name, role in policy.roles.items()
        for pattern in role.own_models
        if not any(ModelMatcher([pattern])(model) for model in known)
    ]


def cmd_check(args: argparse.Namespace) -> int:
    try:
        policy = _load(args.policy)
    except PolicyError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in {args.policy}", file=sys.stderr)
        return 1
    for role, pattern in _unmatched_patterns(policy):
        print(
            f"warning: {args.policy}: roles.{role}.models: {pattern!r} matches none of the model ids the installed"
            f" anthropic SDK ({anthropic.__version__}) knows; a typo, or a model newer than the SDK?",
            file=sys.stderr,
        )
    roles = ", ".join(policy.roles) or "(none: everything is denied)"
    print(f"{args.policy}: OK, {len(policy.roles)} role(s): {roles}; revision {policy.revision}")
    return 0


def _granting_rules(policy: Policy, role_name: str, model: str) -> list[str]:
    role = policy.roles[role_name]
    rules = []
    for name in (role_name, *sorted(role.ancestors)):
        for pattern in policy.roles[name].own_models:
            if ModelMatcher([pattern])(model):
                rules.append(f"roles.{name}.models {pattern!r}" + ("" if name == role_name else " (inherited)"))
    return rules


_FIELD_GRANTS = {
    "tool_not_allowed": "tools",
    "mcp_server_not_allowed": "mcp_servers",
    "service_tier_not_allowed": "service_tiers",
    "speed_not_allowed": "speeds",
    "inference_geo_not_allowed": "inference_geos",
    "beta_not_allowed": "betas",
}
"""The role key whose grant each request-field denial names."""


def request_fields(args: argparse.Namespace) -> dict[str, object]:
    """The request fields ``explain``'s options ask for, as the SDK would send them in the body."""
    fields: dict[str, object] = {}
    tools = [
        {"name": "client_tool", "input_schema": {"type": "object"}}
        if kind == "custom"
        else {"type": kind, "name": kind}
        for kind in args.tool or ()
    ]
    servers = [{"type": "url", "url": url, "name": f"server{n}"} for n, url in enumerate(args.mcp_server or ())]
    given = {
        "tools": tools,
        "mcp_servers": servers,
        "service_tier": args.service_tier,
        "speed": args.speed,
        "inference_geo": args.inference_geo,
        "betas": args.beta,
        "workspace_id": args.workspace_id,
    }
    for name, value in given.items():
        if value:
            fields[name] = value
    return fields


def explain_call(
    policy: Policy,
    role: str,
    *,
    model: str,
    max_tokens: int | None,
    stream: bool = False,
    fields: dict[str, object] | None = None,
) -> CallPlan:
    """What the governed client would make of ``messages.create(model=..., max_tokens=..., **fields)`` by ``role``:
    the runtime's own :func:`~claude_rbac.policy.plan_call` (through :func:`~claude_rbac.policy.probe`, as
    ``claude-rbac test`` does), on the request the SDK would send."""
    known = policy.role(role)
    asked = max_tokens if max_tokens is not None else (known.max_tokens if known and known.max_tokens else 1)
    body: dict[str, object] = {"model": model, "max_tokens": asked, **(fields or {})}
    if stream:
        body["stream"] = True
    return probe(policy, Principal("explain", role), body)


def _denial_rule(policy: Policy, role: Role, name: str, args: argparse.Namespace, reason: str) -> list[str]:
    if reason == "api_access_not_allowed":
        return [f"  rule: roles.{name}.allowed is false" if role.models else "  rule: the role grants no model"]
    if reason == "model_not_allowed":
        return [
            f"  rule: no pattern of roles.{name}.models (with inherited ones) matches {args.model!r}",
            f"  patterns: {', '.join(role.models) or '(none)'}",
        ]
    if reason == "max_tokens_exceeded":
        return [f'  limit: max_tokens {role.max_tokens} (on_excess = "reject")']
    if (key := _FIELD_GRANTS.get(reason)) is not None:
        granted = getattr(role, key)
        return [
            f"  rule: no entry of roles.{name}.{key} (with inherited ones and the defaults) allows it",
            f"  {key}: {', '.join(granted) or '(none)'}",
        ]
    if reason == "workspace_not_allowed":
        workspace = role.workspace or policy.settings.default_workspace
        known = policy.settings.workspaces.get(workspace) if workspace else None
        where = f"workspaces.{workspace}.id" if workspace else "the role's workspace"
        return [f"  rule: a request may name only {where}" + ("" if known and known.id else ", which is not set")]
    return []


def cmd_explain(args: argparse.Namespace) -> int:
    try:
        policy = _load(args.policy)
    except PolicyError as exc:
        print(f"error: the policy is invalid:\n{exc}", file=sys.stderr)
        return 1
    fields = request_fields(args)
    plan = explain_call(
        policy, args.role, model=args.model, max_tokens=args.max_tokens, stream=args.stream, fields=fields
    )
    decision = plan.decision
    if decision.reason == "invalid_request":
        print(f"error: {decision.message}", file=sys.stderr)
        return 2
    role = policy.role(args.role)
    if role is None or not decision.allowed:
        print(f"denied ({decision.reason}): {decision.message}")
        if role is None:
            print(f"  rule: {args.policy} has no role {args.role!r} (roles: {', '.join(policy.roles)})")
        else:
            print("\n".join(_denial_rule(policy, role, args.role, args, decision.reason)))
        return 1
    print(f"allowed: role {args.role!r} may use {args.model!r}")
    for rule in _granting_rules(policy, args.role, args.model):
        print(f"  rule: {rule}")
    for name, values in decision.fields:
        print(
            f"  {name}: {', '.join(values)}"
            + (" (recorded: the governor does not govern it)" if name == "unknown_fields" else "")
        )
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
    for name, spend in (
        ("spend", role.spend),
        ("pool.spend", role.pool_spend),
        ("workspace.spend", role.workspace_spend),
    ):
        for period, micro in (("day", spend.day), ("month", spend.month)):
            if micro is not None:
                print(f"  limit: {name}.{period} ${dollars_of(micro)} (UTC {period})")
    if role.spends:
        body = {"model": args.model, "max_tokens": decision.max_tokens_effective or 1, **fields}
        try:
            reserved = reserve(
                body, policy.prices, input_tokens=estimate_input_tokens(body), runs=[(args.model, body["max_tokens"])]
            )
            print(
                f"  reserves: ${dollars_of(reserved)} before the call (its worst case: the prompt estimate as cache"
                " writes at the dearest TTL or as input, max_tokens as output, each server tool at max_uses)"
            )
        except (MissingPrice, ValueError) as exc:
            print(f"  reserves: nothing, the call is refused: {exc}")
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
        help="the max_tokens it asks for (without it, the role's cap: only the model is checked)",
    )
    explain.add_argument(
        "--stream",
        action="store_true",
        help="a streaming call (without it, a non-streaming call, for which the SDK refuses a max_tokens that"
        " could take longer than 10 minutes)",
    )
    for flag, dest, what in (
        ("--tool", "tool", "a tool type it sends, e.g. web_search_20260318, or custom for a client tool"),
        ("--mcp-server", "mcp_server", "an MCP server URL it connects"),
        ("--beta", "beta", "a beta it asks for (the SDK's betas=)"),
    ):
        explain.add_argument(flag, dest=dest, action="append", metavar="VALUE", help=f"{what} (repeatable)")
    explain.add_argument("--service-tier", dest="service_tier", help="the service_tier it asks for, e.g. priority")
    explain.add_argument("--speed", help="the speed it asks for, e.g. fast")
    explain.add_argument("--inference-geo", dest="inference_geo", help="the inference_geo it asks for, e.g. us")
    explain.add_argument("--workspace-id", dest="workspace_id", help="the workspace_id it names")
    explain.set_defaults(run=cmd_explain)
    add_test_command(commands)
    add_diff_command(commands)

    keys = commands.add_parser(
        "keys",
        help="list workspaces, key sources and fingerprints (never a key)",
        description="List workspaces and their key sources; exit 1 when a key is missing.",
    )
    keys.add_argument("policy", metavar="POLICY", help="a .toml, .json or .yaml policy")
    keys.add_argument("--service", help="the service whose key to look up (RBAC(service=...))")
    keys.set_defaults(run=cmd_keys)
    add_spend_command(commands)

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
