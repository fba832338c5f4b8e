from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from claude_rbac import InvalidRequest, Policy, PolicyError, Principal, Scope

ALICE = Principal("alice", "user")
BOB = Principal("bob", "power")
CAROL = Principal("carol", "admin")
VERA = Principal("vera", "viewer")


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(PolicyError) as info:
        Policy.from_dict(data, source="rbac.toml")
    return [str(problem) for problem in info.value.problems]


class TestDefaultPolicy:
    def test_the_guides_table(self) -> None:
        policy = Policy.default()
        assert list(policy.roles) == ["viewer", "user", "power", "admin"]
        viewer, user, power, admin = (policy.roles[name] for name in policy.roles)
        assert not viewer.allowed
        assert (user.allowed, user.max_tokens, user.rpm) == (True, 512, 10)
        assert set(user.models) == {"claude-haiku-*"}
        assert (power.max_tokens, power.rpm) == (4096, 60)
        assert set(power.models) == {"claude-haiku-*", "claude-sonnet-*", "claude-opus-*"}
        assert (admin.max_tokens, admin.rpm) == (8192, 200)
        assert set(admin.models) == set(power.models)

    @pytest.mark.parametrize(
        ("principal", "model", "allowed"),
        [
            (ALICE, "claude-haiku-4-5", True),
            (ALICE, "claude-sonnet-4-6", False),
            (ALICE, "claude-opus-4-7", False),
            (BOB, "claude-opus-4-7", True),
            (BOB, "claude-sonnet-4-6", True),
            (CAROL, "claude-haiku-4-5", True),
            (VERA, "claude-haiku-4-5", False),
            (ALICE, "claude-haiku-5-0", True),  # the next haiku needs no policy change
            (ALICE, "gpt-4o", False),
        ],
    )
    def test_models(self, principal: Principal, model: str, allowed: bool) -> None:
        assert Policy.default().decide(principal, model=model, max_tokens=100).allowed is allowed

    def test_hierarchy(self) -> None:
        policy = Policy.default()
        assert policy.has_role(CAROL, "user")
        assert policy.has_role(BOB, "user")
        assert policy.has_role(ALICE, "user")
        assert policy.has_role(ALICE, "viewer")
        assert not policy.has_role(ALICE, "power")
        assert not policy.has_role(VERA, "user")
        assert not policy.has_role(None, "viewer")
        assert not policy.has_role(Principal("x", "root"), "viewer")


class TestDecide:
    def test_reasons(self) -> None:
        policy = Policy.default()
        assert policy.decide(None, model="claude-haiku-4-5").reason == "unauthenticated"
        assert policy.decide(VERA, model="claude-haiku-4-5").reason == "api_access_not_allowed"
        assert policy.decide(Principal("x", "ghost")).reason == "unknown_role"
        denied = policy.decide(ALICE, model="claude-opus-4-7", max_tokens=100)
        assert (denied.allowed, denied.reason, denied.role, denied.model) == (
            False,
            "model_not_allowed",
            "user",
            "claude-opus-4-7",
        )
        assert "claude-opus-4-7" in denied.message and "user" in denied.message
        assert "haiku" not in denied.message  # never the policy

    def test_clamp_by_default(self) -> None:
        decision = Policy.default().decide(ALICE, model="claude-haiku-4-5", max_tokens=2000)
        assert decision.allowed and decision.clamped
        assert (decision.max_tokens_requested, decision.max_tokens_effective) == (2000, 512)

    def test_reject_when_the_policy_says_so(self) -> None:
        policy = Policy.from_dict({"on_excess": "reject", "roles": {"user": {"models": ["m-*"], "max_tokens": 10}}})
        decision = policy.decide(Principal("a", "user"), model="m-1", max_tokens=11)
        assert (decision.allowed, decision.reason) == (False, "max_tokens_exceeded")
        assert policy.decide(Principal("a", "user"), model="m-1", max_tokens=10).reason == "allowed"

    @pytest.mark.parametrize("bad", [0, -1, 1.5, True, 10**9, "100", None])
    def test_bad_max_tokens_raise_a_value_error(self, bad: object) -> None:
        with pytest.raises(ValueError, match="max_tokens") as info:
            Policy.default().decide(ALICE, model="claude-haiku-4-5", max_tokens=bad)
        assert isinstance(info.value, InvalidRequest)

    @pytest.mark.parametrize("bad", [None, 42, b"claude-haiku-4-5", ["claude-haiku-4-5"], ""])
    def test_bad_model_raises_a_value_error(self, bad: object) -> None:
        with pytest.raises(InvalidRequest, match="model"):
            Policy.default().decide(ALICE, model=bad, max_tokens=10)

    @pytest.mark.parametrize(
        "variant",
        [
            "Claude-Haiku-4-5",
            "claude-haiku-4-5 ",
            " claude-haiku-4-5",
            "claude-haiku-4-5\n",
            "сlaude-haiku-4-5",
            "ｃｌａｕｄｅ-haiku-4-5",
            "claude-haiku-4-5\u200b",
            "claude_haiku-4-5",
            "CLAUDE-HAIKU-4-5",
        ],
    )
    def test_no_case_folding_and_no_normalisation(self, variant: str) -> None:
        assert not Policy.default().decide(ALICE, model=variant, max_tokens=10).allowed

    def test_role_names_are_exact(self) -> None:
        policy = Policy.default()
        for role in ("User", "user ", "USER", "usеr"):
            assert not policy.decide(Principal("a", role), model="claude-haiku-4-5").allowed
            assert not policy.has_role(Principal("a", role), "user")

    def test_scope_narrows_and_never_widens(self) -> None:
        policy = Policy.default()
        only_opus = Scope.build(models=["claude-opus-*"], max_tokens=100)
        assert not policy.decide(ALICE, model="claude-opus-4-7", max_tokens=10, scope=only_opus).allowed
        assert not policy.decide(BOB, model="claude-haiku-4-5", max_tokens=10, scope=only_opus).allowed
        narrowed = policy.decide(BOB, model="claude-opus-4-7", max_tokens=1000, scope=only_opus)
        assert narrowed.max_tokens_effective == 100
        wide = Scope.build(max_tokens=100_000)
        assert policy.decide(ALICE, model="claude-haiku-4-5", max_tokens=9000, scope=wide).max_tokens_effective == 512

    def test_a_policy_is_immutable(self) -> None:
        policy = Policy.default()
        with pytest.raises(AttributeError):
            policy.on_excess = "reject"  # type: ignore[misc]
        with pytest.raises(TypeError):
            policy.roles["root"] = policy.roles["admin"]  # type: ignore[index]

    def test_an_empty_policy_denies_everything(self) -> None:
        policy = Policy.from_dict({})
        assert not policy.decide(ALICE, model="claude-haiku-4-5", max_tokens=1).allowed
        assert not policy.has_role(ALICE, "user")


class TestValidation:
    def test_unknown_keys_name_file_role_and_field(self) -> None:
        found = problems({"roles": {"user": {"models": ["m"], "max_token": 5}}, "role": {}})
        assert "rbac.toml: roles.user.max_token: unknown key 'max_token'" in found
        assert "rbac.toml: role: unknown top-level key 'role'" in found

    def test_unknown_parent(self) -> None:
        assert problems({"roles": {"user": {"inherits": "ghost", "models": ["m"]}}}) == [
            "rbac.toml: roles.user.inherits: inherits from unknown role 'ghost'"
        ]

    def test_cycles(self) -> None:
        found = problems(
            {"roles": {"a": {"inherits": "b", "models": ["m"]}, "b": {"inherits": "c"}, "c": {"inherits": "a"}}}
        )
        assert found == ["rbac.toml: roles.c.inherits: inheritance cycle: a -> b -> c -> a"]
        assert problems({"roles": {"a": {"inherits": "a", "models": ["m"]}}}) == [
            "rbac.toml: roles.a.inherits: a role cannot inherit from itself"
        ]

    @pytest.mark.parametrize("value", [0, -5, 1.5, "10", True, 10**13])
    @pytest.mark.parametrize("field", ["max_tokens", "rpm", "tpm"])
    def test_limits_must_be_positive_integers(self, field: str, value: object) -> None:
        (problem,) = problems({"roles": {"user": {"models": ["m"], field: value}}})
        assert problem.startswith(f"rbac.toml: roles.user.{field}: must be")

    def test_an_allowed_role_needs_models(self) -> None:
        assert problems({"roles": {"user": {"allowed": True}}}) == [
            "rbac.toml: roles.user.models: an allowed role needs at least one model"
        ]

    @pytest.mark.parametrize("pattern", ["", "claude haiku", "claude-[ab]", "claude-*\n", "x" * 300, "ｃlaude-*", 5])
    def test_malformed_patterns(self, pattern: object) -> None:
        (problem,) = problems({"roles": {"user": {"models": [pattern]}}})
        assert problem.startswith("rbac.toml: roles.user.models:")

    def test_every_problem_is_reported_at_once(self) -> None:
        found = problems(
            {
                "version": 2,
                "on_excess": "drop",
                "roles": {"user": {"rpm": 0, "max_tokens": -1, "models": ["ok", "not ok"]}},
            }
        )
        assert len(found) == 5

    def test_role_overrides_and_inherits(self) -> None:
        policy = Policy.from_dict(
            {
                "roles": {
                    "base": {"models": ["m-a"], "max_tokens": 100, "rpm": 5},
                    "mid": {"inherits": "base", "models": ["m-b"], "rpm": 7},
                    "top": {"inherits": ["mid"], "max_tokens": 300},
                }
            }
        )
        top = policy.roles["top"]
        assert (top.max_tokens, top.rpm, set(top.models)) == (300, 7, {"m-a", "m-b"})
        assert top.ancestors == {"mid", "base"}

    def test_allowed_false_on_a_role_with_models_suspends_it(self) -> None:
        policy = Policy.from_dict({"roles": {"user": {"models": ["m"], "allowed": False}}})
        assert policy.decide(Principal("a", "user"), model="m").reason == "api_access_not_allowed"


class TestFiles:
    TOML = """
version = 1
on_excess = "clamp"

[roles.viewer]
allowed = false

[roles.user]
inherits = ["viewer"]
models = ["claude-haiku-*"]
max_tokens = 512
rpm = 10

[roles.power]
inherits = ["user"]
models = ["claude-sonnet-*", "claude-opus-*"]
max_tokens = 4096
rpm = 60
"""

    def _same_as_default_subset(self, policy: Policy) -> None:
        assert policy.roles["power"].models == ("claude-sonnet-*", "claude-opus-*", "claude-haiku-*")
        assert policy.decide(ALICE, model="claude-haiku-4-5", max_tokens=900).max_tokens_effective == 512

    def test_toml(self, tmp_path: Path) -> None:
        path = tmp_path / "rbac.toml"
        path.write_text(self.TOML)
        self._same_as_default_subset(Policy.from_file(path))

    def test_json_and_yaml_carry_the_same_structure(self, tmp_path: Path) -> None:
        import tomllib
        import yaml

        data = tomllib.loads(self.TOML)
        (tmp_path / "rbac.json").write_text(json.dumps(data))
        (tmp_path / "rbac.yaml").write_text(yaml.safe_dump(data))
        (tmp_path / "rbac.yml").write_text(yaml.safe_dump(data))
        for name in ("rbac.json", "rbac.yaml", "rbac.yml"):
            self._same_as_default_subset(Policy.from_file(tmp_path / name))

    def test_errors_name_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.toml"
        path.write_text('[roles.user]\nmodels = ["m"]\nrpm = 0\n')
        with pytest.raises(PolicyError, match=r"bad\.toml: roles\.user\.rpm: must be a positive integer, got 0"):
            Policy.from_file(path)

    @pytest.mark.parametrize(
        ("name", "content", "message"),
        [
            ("broken.toml", "[roles.user\n", "cannot parse"),
            ("broken.json", "{", "cannot parse"),
            ("broken.yaml", "roles: [", "cannot parse"),
            ("list.json", "[1, 2]", "top level"),
            ("policy.ini", "x", "unknown policy file type"),
        ],
    )
    def test_unreadable_files(self, tmp_path: Path, name: str, content: str, message: str) -> None:
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(PolicyError, match=message) as info:
            Policy.from_file(path)
        assert name in str(info.value)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(PolicyError, match="cannot read"):
            Policy.from_file(tmp_path / "nope.toml")

    def test_the_example_policy_loads(self) -> None:
        policy = Policy.from_file(Path(__file__).parents[1] / "examples" / "rbac.toml")
        assert set(policy.roles) == {"viewer", "user", "power", "admin"}
