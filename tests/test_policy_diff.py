"""``claude-rbac diff``: each role's gains and losses between two policies, changes through inheritance, and the
CI gates (``--exit-code``, ``--fail-on-gain SETTING[=PATTERN]``)."""

from __future__ import annotations

import fnmatch
import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_rbac import Policy
from claude_rbac.cli import main
from claude_rbac.policy import diff_policies, gain_hits, globs_overlap

EXAMPLES = Path(__file__).parents[1] / "examples"
OLD = str(EXAMPLES / "rbac.toml")
NEW = str(EXAMPLES / "rbac_next.toml")
BASE: dict[str, Any] = {
    "roles": {
        "user": {"models": ["claude-haiku-*"], "max_tokens": 512, "rpm": 10},
        "power": {"inherits": "user", "models": ["claude-sonnet-*"], "max_tokens": 4096},
    }
}


def diff(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(["diff", *argv])
    return code, capsys.readouterr().out.splitlines()


def changed(**roles: dict[str, Any]) -> dict[str, Any]:
    return {"roles": {**BASE["roles"], **roles}}


def test_the_example_change(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = diff(capsys, OLD, NEW)
    assert code == 0
    revision = Policy.from_file(OLD).revision
    assert lines == [
        f"{OLD} (revision {revision}) -> {NEW} (revision 2025-07-opus-to-admin)",
        "(+ a gain, - a loss, ~ a change that is neither)",
        "role user:",
        "  + max_tokens 512 -> 1024",
        "  - tpm unlimited -> 20000",
        "role power:",
        "  - models claude-opus-*",
        "  - tpm unlimited -> 20000  (inherited from user)",
        "role admin (only through inheritance):",
        "  - tpm unlimited -> 20000  (inherited from user)",
        "3 role(s) changed: user, power, admin (admin only through inheritance)",
    ]


def test_exit_code_fails_the_gate_only_on_a_change(capsys: pytest.CaptureFixture[str]) -> None:
    assert diff(capsys, OLD, NEW, "--exit-code")[0] == 1
    code, lines = diff(capsys, OLD, OLD, "--exit-code")
    assert code == 0
    assert lines[-1] == "no changes: every role has the same grants"


def test_fail_on_gain_of_a_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert diff(capsys, OLD, NEW, "--fail-on-gain", "models=claude-opus-*")[0] == 0  # opus only moved up
    code, lines = diff(capsys, NEW, OLD, "--fail-on-gain", "models=claude-opus-*")
    assert code == 1
    assert lines[-1] == "gate --fail-on-gain models=claude-opus-*: role power gains models claude-opus-*"
    code, lines = diff(capsys, OLD, NEW, "--fail-on-gain", "max_tokens", "--fail-on-gain", "rpm")
    assert code == 1
    assert lines[-1] == "gate --fail-on-gain max_tokens: role user gains max_tokens: 512 -> 1024"


def test_a_broader_pattern_is_a_gain_of_what_it_may_admit() -> None:
    broader = diff_policies(Policy.from_dict(BASE), Policy.from_dict(changed(user={"models": ["claude-*"]})))
    assert gain_hits(broader, "models", "claude-opus-*") == [
        "role user gains models claude-*",
        "role power gains models claude-*",  # through inheritance
    ]
    other = diff_policies(Policy.from_dict(BASE), Policy.from_dict(changed(user={"models": ["claude-haiku-4-5"]})))
    assert gain_hits(other, "models", "claude-opus-*") == []


def test_a_role_that_becomes_allowed_gains_every_model_it_has() -> None:
    suspended = changed(power={"inherits": "user", "models": ["claude-opus-*"], "allowed": False})
    resumed = changed(power={"inherits": "user", "models": ["claude-opus-*"]})
    result = diff_policies(Policy.from_dict(suspended), Policy.from_dict(resumed))
    assert gain_hits(result, "models", "claude-opus-*") == ["role power gains models claude-opus-*"]
    assert gain_hits(result, "models") == ["role power gains models claude-opus-*, claude-haiku-*"]
    assert gain_hits(result, "allowed") == ["role power gains allowed: False -> True"]
    assert gain_hits(diff_policies(Policy.from_dict(resumed), Policy.from_dict(suspended)), "models") == []


def test_added_and_removed_roles(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    old, new = tmp_path / "old.toml", tmp_path / "new.toml"
    old.write_text(
        'version = 1\n[roles.user]\nmodels = ["claude-haiku-*"]\n[roles.intern]\nmodels = ["claude-haiku-4-5"]\n'
    )
    new.write_text(
        'version = 1\n[roles.user]\nmodels = ["claude-haiku-*"]\n[roles.ops]\nmodels = ["claude-opus-*"]\nrpm = 5\n'
    )
    code, lines = diff(capsys, str(old), str(new), "--fail-on-gain", "models=claude-opus-*")
    assert code == 1
    assert "role intern: removed" in lines
    assert "  - models claude-haiku-4-5" in lines
    added = lines.index("role ops: added")
    assert lines[added : added + 10] == [
        "role ops: added",
        "  + allowed true",
        "  + models claude-opus-*",
        "  + rpm 5",
        "  + mode enforce",
        "  + batches own",
        "  + tools custom",
        "  + service_tiers auto",
        "  + speeds standard",
        "  + unlimited: max_tokens, tpm, budget.day, budget.month, pool.tpm, pool.budget.day, pool.budget.month,"
        " spend.day, spend.month, pool.spend.day, pool.spend.month, workspace.spend.day, workspace.spend.month",
    ]
    assert lines[-1] == "gate --fail-on-gain models=claude-opus-*: role ops gains models claude-opus-*"


def test_a_top_level_change_reaches_every_role(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    old, new = tmp_path / "old.toml", tmp_path / "new.toml"
    old.write_text('version = 1\n[roles.user]\nmodels = ["claude-haiku-*"]\n')
    new.write_text(
        'version = 1\nmode = "shadow"\non_excess = "reject"\nrevoked = ["sk-ant-api03...AbCd#1a2b3c4d"]\n'
        '[roles.user]\nmodels = ["claude-haiku-*"]\ndescription = "Everyone."\n'
    )
    code, lines = diff(capsys, str(old), str(new), "--fail-on-gain", "mode=shadow")
    assert code == 1
    assert "  ~ description (none) -> Everyone." in lines
    assert "  + mode enforce -> shadow  (inherited from policy)" in lines
    assert "policy-wide settings:" in lines
    assert "  ~ on_excess clamp -> reject" in lines
    assert "  + mode enforce -> shadow" in lines
    assert "  - revoked sk-ant-api03...AbCd#1a2b3c4d (added)" in lines
    assert lines[-1] == "gate --fail-on-gain mode=shadow: role user: mode becomes shadow"


def test_a_grandparent_change_names_its_source() -> None:
    old = {"roles": {"a": {"models": ["claude-haiku-*"], "rpm": 5}, "b": {"inherits": "a"}, "c": {"inherits": "b"}}}
    new = {"roles": {**old["roles"], "a": {"models": ["claude-haiku-*"], "rpm": 50}}}
    result = diff_policies(Policy.from_dict(old), Policy.from_dict(new))
    assert [(role.role, role.inherited_only) for role in result.roles] == [("a", False), ("b", True), ("c", True)]
    assert [change.inherited_from for role in result.roles for change in role.changes] == [(), ("a",), ("a",)]


def test_an_invalid_policy_or_gate_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("version = 1\n[roles.user]\nrpm = 0\n")
    assert main(["diff", OLD, str(bad)]) == 2
    assert "roles.user.rpm: must be a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["diff", OLD, NEW, "--fail-on-gain", "=claude-opus-*"])
    assert exited.value.code == 2


@settings(max_examples=300, deadline=None)
@given(st.text("ab*?", max_size=4), st.text("ab*?", max_size=4))
def test_glob_overlap_is_exact(first: str, second: str) -> None:
    # A witness, when there is one, is no longer than both patterns, over their letters plus one other.
    witnesses = ("".join(letters) for size in range(9) for letters in itertools.product("abc", repeat=size))
    exists = any(fnmatch.fnmatchcase(word, first) and fnmatch.fnmatchcase(word, second) for word in witnesses)
    assert globs_overlap(first, second) == exists


def test_the_request_field_grants_are_diffed_and_gated() -> None:
    """Issue #15's keys are settings like any other: a role gaining web search fails ``--fail-on-gain tools=web_*``."""
    user, power = BASE["roles"]["user"], BASE["roles"]["power"]
    new = changed(user={**user, "speeds": ["fast"]}, power={**power, "tools": ["web_search"], "strict": True})
    result = diff_policies(Policy.from_dict(BASE), Policy.from_dict(new))
    changes = {(role.role, change.setting): change for role in result.roles for change in role.changes}
    assert changes["power", "tools"].gained == ("web_search",)
    assert changes["power", "strict"].direction == "loss"
    assert changes["power", "speeds"].inherited_from == ("user",)
    assert gain_hits(result, "tools", "web_*") == ["role power gains tools web_search"]
    assert gain_hits(result, "tools", "code_*") == []
    assert gain_hits(result, "speeds") == ["role user gains speeds fast", "role power gains speeds fast"]
