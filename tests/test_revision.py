"""A policy's revision: its own ``revision`` key, else a hash of the compiled document that changes exactly when
what the policy says changes (not its comments, key order or file format) and is the same in every process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_rbac import Policy, PolicyError

EXAMPLE = Path(__file__).parents[1] / "examples" / "rbac.toml"
DOCUMENT: dict[str, Any] = {
    "version": 1,
    "on_excess": "clamp",
    "roles": {
        "viewer": {"allowed": False},
        "user": {"inherits": "viewer", "models": ["claude-haiku-*"], "max_tokens": 512, "rpm": 10},
        "power": {"inherits": ["user"], "models": ["claude-opus-*"], "budget": {"day": 100_000}},
    },
}


def test_the_file_format_comments_and_key_order_do_not_change_it(tmp_path: Path) -> None:
    toml = tmp_path / "rbac.toml"
    toml.write_text(
        "# the team's policy\nversion = 1\non_excess = 'clamp'\n\n[roles.viewer]\nallowed = false\n\n"
        '[roles.user]\nrpm = 10  # per user\nmax_tokens = 512\nmodels = ["claude-haiku-*"]\ninherits = "viewer"\n\n'
        '[roles.power]\ninherits = ["user"]\nmodels = ["claude-opus-*"]\nbudget = { day = 100000 }\n'
    )
    (tmp_path / "rbac.json").write_text(json.dumps(DOCUMENT, indent=2))
    (tmp_path / "rbac.yaml").write_text(yaml.safe_dump(DOCUMENT))
    revisions = {Policy.from_file(tmp_path / name).revision for name in ("rbac.toml", "rbac.json", "rbac.yaml")}
    assert revisions == {Policy.from_dict(DOCUMENT).revision}
    (revision,) = revisions
    assert len(revision) == 12
    assert int(revision, 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"on_excess": "reject"},
        {"mode": "shadow"},
        {"roles": {**DOCUMENT["roles"], "user": {**DOCUMENT["roles"]["user"], "max_tokens": 513}}},
        {"roles": {**DOCUMENT["roles"], "viewer": {"allowed": False, "description": "read only"}}},
        {"roles": {**DOCUMENT["roles"], "power": {"inherits": ["user"], "models": ["claude-opus-4-7"]}}},
        {"revoked": ["sk-ant-api03...AbCd#1a2b3c4d"]},
    ],
)
def test_anything_the_policy_says_changes_it(change: dict[str, Any]) -> None:
    assert Policy.from_dict({**DOCUMENT, **change}).revision != Policy.from_dict(DOCUMENT).revision


@settings(max_examples=50, deadline=None)
@given(st.permutations(list(DOCUMENT["roles"])), st.booleans())
def test_the_order_of_roles_and_keys_does_not_change_it(order: list[str], reverse_keys: bool) -> None:
    roles = {}
    for name in order:
        keys = list(DOCUMENT["roles"][name].items())
        roles[name] = dict(reversed(keys) if reverse_keys else keys)
    assert Policy.from_dict({**DOCUMENT, "roles": roles}).revision == Policy.from_dict(DOCUMENT).revision


def test_every_process_computes_the_same_revision() -> None:
    code = f"from claude_rbac import Policy; print(Policy.from_file({str(EXAMPLE)!r}).revision)"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={"PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert runs == {Policy.from_file(EXAMPLE).revision}


def test_a_declared_revision_wins() -> None:
    assert Policy.from_dict({**DOCUMENT, "revision": "2025-07-01.3"}).revision == "2025-07-01.3"
    assert Policy.from_dict({**DOCUMENT, "revision": "v2+a1b2c3d"}).revision == "v2+a1b2c3d"


@pytest.mark.parametrize(
    ("revision", "message"),
    [
        (7, "must be a string, got int"),
        ("", "must be 1-64 characters"),
        ("release 2", "must be 1-64 characters"),
        ("r" * 65, "must be 1-64 characters"),
        ("-flag", "must be 1-64 characters"),
    ],
)
def test_a_bad_declared_revision_is_a_policy_error(revision: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message) as caught:
        Policy.from_dict({**DOCUMENT, "revision": revision})
    (problem,) = caught.value.problems
    assert problem.field == "revision"


def test_a_key_pasted_as_the_revision_is_never_echoed() -> None:
    key = "sk-ant-api03-" + "x" * 40
    with pytest.raises(PolicyError) as caught:
        Policy.from_dict({**DOCUMENT, "revision": key})
    assert key not in str(caught.value)
