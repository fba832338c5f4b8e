"""docs/policy.md, the policy reference, holds: every policy in it loads, its price overrides validate, and the
README's policy section points to it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from claude_rbac import Policy
from claude_rbac.policy.prices import validate_price_overrides

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "policy.md").read_text()
BLOCKS = re.findall(r"```toml\n(.*?)```", DOC, re.S)


@pytest.mark.parametrize("block", [block for block in BLOCKS if "[prices." not in block])
def test_every_policy_in_the_reference_loads(block: str, tmp_path: Path) -> None:
    path = tmp_path / "rbac.toml"
    path.write_text(block)
    policy = Policy.from_file(path)
    assert policy.roles


def test_the_reference_opens_with_a_policy_that_uses_the_request_field_grants() -> None:
    policy = Policy.from_dict(tomllib.loads(BLOCKS[0]))
    assert set(policy.roles["admin"].tools) == {"custom", "web_search", "code_execution"}
    assert policy.revision == "2026-07-01"
    assert policy.roles["admin"].batches == "all"


def test_its_price_overrides_validate() -> None:
    (block,) = [block for block in BLOCKS if "[prices." in block]
    assert validate_price_overrides(tomllib.loads(block)["prices"]) == []


def test_the_readme_points_to_it() -> None:
    section = (ROOT / "README.md").read_text().split("## The policy file", 1)[1].split("\n## ", 1)[0]
    assert "(docs/policy.md)" in section
