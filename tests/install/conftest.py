"""The wheel under test and the fresh venvs it is installed into, one per install line.

``make test`` passes the wheel it built in ``CLAUDE_RBAC_WHEEL``; run alone, these tests build one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import readme
from .venvs import ROOT, VenvPool, build_wheel, download, scratch_dir

EXTRAS = ("flask", "fastapi", "starlette", "django", "redis", "yaml")
SECTIONS = {"core": "Install", "flask": "Flask", "fastapi": "FastAPI", "starlette": "Starlette", "django": "Django"}
"""The venvs whose install line is the README's own: the core from the Install section, the frameworks from theirs."""
TELEMETRY = "Audit trail"
"""The section whose console quick start runs the Flask section's app under ``opentelemetry-instrument``."""
CACHE = ROOT / "build" / "install-matrix"


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("CLAUDE_RBAC_WHEEL")
    if given:
        return Path(given)
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def install_plans(wheel: Path) -> dict[str, list[str]]:
    """Each venv's ``pip install`` arguments: the README's line where it has one, else the extra alone."""
    plans = {name: readme.requirements(title, wheel) for name, title in SECTIONS.items()}
    for extra in EXTRAS:
        plans.setdefault(extra, [f"{wheel}[{extra}]"])
    plans["otel"] = plans["flask"] + readme.install_line(TELEMETRY)  # the Flask app, seen with the distro
    return plans


def wheelhouse_for(plans: dict[str, list[str]], wheel: Path) -> Path:
    """One download of everything the venvs need, kept while pyproject.toml and the install lines stay the same."""
    others = sorted({word for words in plans.values() for word in words if not word.startswith(str(wheel))})
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + "\n".join(others).encode()).hexdigest()[:16]
    wheelhouse = CACHE / f"wheelhouse-{key}"
    if CACHE.exists():
        for stale in CACHE.glob("wheelhouse-*"):
            if not stale.name.startswith(wheelhouse.name):
                shutil.rmtree(stale, ignore_errors=True)
    return download([f"{wheel}[{','.join(EXTRAS)}]", *others], wheelhouse)


@pytest.fixture(scope="session")
def venvs(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VenvPool]:
    plans = install_plans(wheel)
    root = Path(tempfile.mkdtemp(prefix="claude-rbac-venvs-", dir=scratch_dir(tmp_path_factory.getbasetemp())))
    pool = VenvPool(root, wheelhouse_for(plans, wheel))
    pool.start(plans)
    try:
        yield pool
    finally:
        pool.close()
        shutil.rmtree(root, ignore_errors=True)  # about 40 MB a venv: keep none of them around
