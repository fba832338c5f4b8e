"""Fresh venvs holding the built wheel, as a user installs it: ``pip install <what the README says>``.

Speed, without giving up the point (each venv resolves the wheel's declared dependencies on its own):

* The registries here send no caching headers, so pip's HTTP cache keeps nothing and every install would
  fetch every dependency again. Instead one ``pip download`` fetches what all the venvs need, through pip's
  configured sources as they are, into a wheelhouse kept under ``build/`` (one per set of requirements);
  each venv then installs from it alone (``--no-index --find-links``). A dependency the wheel fails to
  declare is still missing from the venv that needs it: pip installs only what is required.
* Venvs are made ``--without-pip`` and filled by this interpreter's pip (``pip --python``), with
  ``--no-compile`` (Python compiles what is imported, when it is imported), all at once (measured on
  2 cores: all seven at once finished in 17 s, three at a time in 23 s), in memory where there is room.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRATCH = Path("/dev/shm")
"""Where the venvs go when it has room: a venv is ~5,000 files, and on a busy disk writing and removing
eight of them takes longer than everything else in these tests (removing them alone took 18 s); in
memory it takes a second."""
SCRATCH_NEEDED = 2 << 30


def scratch_dir(fallback: Path) -> Path:
    """:data:`SCRATCH` when it is a writable tmpfs with room for the venvs, else ``fallback``."""
    if SCRATCH.is_dir() and os.access(SCRATCH, os.W_OK) and shutil.disk_usage(SCRATCH).free > SCRATCH_NEEDED:
        return SCRATCH
    return fallback


_INHERITED_NOT = ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE")
"""A user's shell has none of these; without PYTHONDONTWRITEBYTECODE the first import compiles for the rest."""
_PREFIXES_NOT = ("ANTHROPIC_", "CLAUDE_RBAC_", "OTEL_", "PYTEST_")


def download(requirements: Sequence[str], wheelhouse: Path) -> Path:
    """Fetch ``requirements`` and their dependencies into ``wheelhouse`` once; a finished one is reused.

    ``requirements`` may name the wheel under test by path: it is left out of the wheelhouse, so every
    venv installs the wheel it is given, never a stale copy.
    """
    done = wheelhouse / ".complete"
    if done.exists():
        return wheelhouse
    partial = wheelhouse.with_name(wheelhouse.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(partial), *requirements],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pip download {' '.join(requirements)} failed:\n{result.stderr[-4000:]}")
    for ours in partial.glob("claude_rbac-*"):
        ours.unlink()
    shutil.rmtree(wheelhouse, ignore_errors=True)
    partial.rename(wheelhouse)
    done.touch()
    return wheelhouse


def build_wheel(out_dir: Path) -> Path:
    """The project's wheel, built the way ``make test`` builds it."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out_dir), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out_dir.glob("claude_rbac-*.whl")
    return wheel


@dataclass
class Venv:
    """One fresh venv and what its install line was."""

    path: Path
    requirements: tuple[str, ...]
    wheelhouse: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name

    def env(self, extra: Mapping[str, str] = {}) -> dict[str, str]:
        """The environment of a user's shell with this venv activated, and nothing of the test run's."""
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in _INHERITED_NOT and not key.startswith(_PREFIXES_NOT)
        }
        env["PATH"] = f"{self.path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.path)
        env.update(extra)
        return env

    def run(
        self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] = {}, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` (a command of this venv's bin/, or ``python``) and return its output."""
        program = argv[0] if os.sep in argv[0] else str(self.bin(argv[0]))
        result = subprocess.run(
            [program, *argv[1:]],
            cwd=cwd,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode} in {self.path.name}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def python_code(
        self, code: str, *, cwd: Path, env: Mapping[str, str] = {}, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run(["python", "-c", code], cwd=cwd, env=env, check=check)


def _create(venv: Venv) -> Venv:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv.path)], check=True, timeout=120)
    installed = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", venv.python, "install", "--quiet", "--no-compile"),
            *("--no-index", "--find-links", str(venv.wheelhouse), *venv.requirements),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if installed.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(venv.requirements)} failed:\n{installed.stderr[-4000:]}")
    return venv


@dataclass
class VenvPool:
    """Venvs installed in the background; :meth:`get` waits for the one a test needs."""

    root: Path
    wheelhouse: Path
    _futures: dict[str, Future[Venv]] = field(default_factory=dict)
    _executor: ThreadPoolExecutor | None = None

    def start(self, plans: Mapping[str, Sequence[str]]) -> None:
        self._executor = ThreadPoolExecutor(len(plans), thread_name_prefix="venv")
        for name, requirements in plans.items():
            venv = Venv(self.root / name, tuple(requirements), self.wheelhouse)
            self._futures[name] = self._executor.submit(_create, venv)

    def get(self, name: str) -> Venv:
        return self._futures[name].result()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
