"""The core's costs: one decision against Casbin, one governed call against a plain SDK call.

Run: ``.venv/bin/python -m benchmarks.bench_core``
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anthropic

from benchmarks import harness
from claude_rbac import RBAC, Policy, Principal

KEY = "sk-ant-api03-benchmark-key-000000000000000000000000000000-BNCH"
MESSAGES = [{"role": "user", "content": "Hello"}]

CASBIN_MODEL = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[role_definition]
g = _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
"""
CASBIN_POLICY = """
p, user, claude-haiku-4-5, call
p, user, claude-haiku-4-6, call
p, power, claude-sonnet-4-6, call
p, power, claude-sonnet-4-7, call
p, power, claude-opus-4-7, call
p, admin, claude-opus-4-8, call
g, user, viewer
g, power, user
g, admin, power
g, alice, user
g, bob, power
"""


def decision_cases() -> list[harness.Case]:
    import casbin

    folder = Path(tempfile.mkdtemp())
    (folder / "model.conf").write_text(CASBIN_MODEL)
    (folder / "policy.csv").write_text(CASBIN_POLICY)
    enforcer = casbin.Enforcer(str(folder / "model.conf"), str(folder / "policy.csv"))
    policy = Policy.default()
    rbac = RBAC(policy, api_key=KEY)
    alice = Principal("alice", "user")

    def loop(call: object) -> harness.Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                call()  # type: ignore[operator]

        return run

    def check_casbin() -> None:
        assert enforcer.enforce("alice", "claude-haiku-4-5", "call")
        assert not enforcer.enforce("alice", "claude-opus-4-7", "call")

    def check_ours() -> None:
        assert rbac.check(alice, model="claude-haiku-4-5", max_tokens=100).allowed
        assert not rbac.check(alice, model="claude-opus-4-7", max_tokens=100).allowed

    return [
        harness.Case(
            "decision",
            "casbin enforce (allow)",
            loop(lambda: enforcer.enforce("alice", "claude-haiku-4-5", "call")),
            check_casbin,
        ),
        harness.Case(
            "decision", "casbin enforce (deny)", loop(lambda: enforcer.enforce("alice", "claude-opus-4-7", "call"))
        ),
        harness.Case(
            "decision",
            "rbac.check (allow)",
            loop(lambda: rbac.check(alice, model="claude-haiku-4-5", max_tokens=100)),
            check_ours,
        ),
        harness.Case(
            "decision", "rbac.check (deny)", loop(lambda: rbac.check(alice, model="claude-opus-4-7", max_tokens=100))
        ),
        harness.Case(
            "decision", "rbac.check (clamp)", loop(lambda: rbac.check(alice, model="claude-haiku-4-5", max_tokens=4000))
        ),
    ]


def derivation_cases(url: str) -> list[harness.Case]:
    base = anthropic.Anthropic(api_key=KEY, base_url=url)
    rbac = RBAC(Policy.default(), api_key=KEY, base_url=url)
    principals = [Principal(f"user-{i}", "user") for i in range(2000)]

    def with_options(n: int) -> None:
        for _ in range(n):
            base.with_options(middleware=[])

    def cached(n: int) -> None:
        for i in range(n):
            rbac.client(principals[i % 10])

    def uncached(n: int) -> None:
        # 2000 principals cycle through a 1024-entry cache: every call derives a client.
        for i in range(n):
            rbac.client(principals[i % 2000])

    return [
        harness.Case("derive", "client.with_options() (SDK)", with_options),
        harness.Case("derive", "rbac.client() (cache hit)", cached),
        harness.Case("derive", "rbac.client() (cache miss)", uncached),
    ]


def call_cases(url: str) -> list[harness.Case]:
    plain = anthropic.Anthropic(api_key=KEY, base_url=url, max_retries=0)
    rbac = RBAC(
        {"roles": {"user": {"models": ["claude-haiku-*"], "max_tokens": 512}}},
        api_key=KEY,
        base_url=url,
        client_options={"max_retries": 0},
    )
    governed = rbac.client(Principal("alice", "user"))
    limited = RBAC(Policy.default(), api_key=KEY, base_url=url, client_options={"max_retries": 0})
    limited_client = limited.client(Principal("bob", "power"))

    def calls(client: anthropic.Anthropic) -> harness.Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)

        return run

    # The same role with a spend limit in dollars: each call also prices its worst case and settles its exact cost.
    priced = RBAC(
        {"roles": {"user": {"models": ["claude-haiku-*"], "max_tokens": 512, "spend": {"day": 10**6}}}},
        api_key=KEY,
        base_url=url,
        client_options={"max_retries": 0},
    )
    priced_client = priced.client(Principal("carol", "user"))

    def with_rpm(rbac: RBAC, client: anthropic.Anthropic) -> harness.Callable[[int], None]:
        def run(n: int) -> None:
            rbac.quota.storage.reset()  # power has rpm=60: start each run with an empty window
            for i in range(n):
                if i % 50 == 49:
                    rbac.quota.storage.reset()
                client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)

        return run

    return [
        harness.Case("call", "plain anthropic client -> FakeClaude", calls(plain)),
        harness.Case("call", "governed client (policy only)", calls(governed)),
        harness.Case("call", "governed client (policy + RPM, memory)", with_rpm(limited, limited_client)),
        harness.Case("call", "governed client (policy + spend limit, memory)", calls(priced_client)),
    ]


def cases() -> list[harness.Case]:
    return decision_cases()


def main() -> str:
    out = ["### Decisions (µs per decision)", harness.table(harness.measure(decision_cases()))]
    with harness.fake_claude_process() as url:
        out += ["### Deriving a governed client (µs)", harness.table(harness.measure(derivation_cases(url)))]
        out += [
            "### One call to the same FakeClaude, in its own process (µs per call)",
            harness.table(harness.measure(call_cases(url), rounds=15, target_seconds=0.3)),
        ]
    return "\n\n".join(out)


if __name__ == "__main__":
    print(main())
