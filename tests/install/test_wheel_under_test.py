"""Under ``make test`` the suite imports claude_rbac from the built wheel, installed, never from src/."""

from __future__ import annotations

import json
import os
import sysconfig
from importlib.metadata import distribution
from pathlib import Path

import pytest

import claude_rbac

from .venvs import ROOT


def test_the_suite_runs_against_the_installed_wheel() -> None:
    wheel = os.environ.get("CLAUDE_RBAC_WHEEL")
    if not wheel:
        pytest.skip("make test sets CLAUDE_RBAC_WHEEL; a run from .venv imports the editable src/")
    imported = Path(claude_rbac.__file__).resolve()
    assert not imported.is_relative_to(ROOT / "src")
    assert imported.is_relative_to(Path(sysconfig.get_paths()["purelib"]).resolve())
    origin = json.loads(distribution("claude-rbac").read_text("direct_url.json") or "{}")
    assert origin.get("dir_info", {}).get("editable") is not True
    assert origin["url"] == Path(wheel).resolve().as_uri()
