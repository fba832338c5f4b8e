"""Extra demo users for the soak: ``CLAUDE_RBAC_DEMO_EXTRA_USERS`` in examples/common.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from examples.common import DEMO_USERS, extra_demo_users

ROOT = Path(__file__).resolve().parents[2]


def test_the_spec_is_name_equals_role_separated_by_commas() -> None:
    assert extra_demo_users("") == {}
    assert extra_demo_users(" uma2=user , paul2 = power,") == {"uma2": "user", "paul2": "power"}


@pytest.mark.parametrize("spec", ["uma2", "=user", "uma2=", "uma2=user,paul2"])
def test_a_malformed_entry_is_an_error(spec: str) -> None:
    with pytest.raises(ValueError, match="CLAUDE_RBAC_DEMO_EXTRA_USERS"):
        extra_demo_users(spec)


def test_the_environment_adds_users_the_server_looks_up() -> None:
    assert "uma2" not in DEMO_USERS  # not set for the test session
    code = "import json; from examples.common import role_of; print(json.dumps([role_of(n) for n in ('uma2', 'x')]))"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLAUDE_RBAC_DEMO_EXTRA_USERS": "uma2=user"}
    argv = [sys.executable, "-c", code]
    out = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == ["user", None]
