"""``pip install claude-rbac`` alone: the package, the command, the test kit and the README's first snippet."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_rbac.testing import FakeClaude
from tests.support.redis import free_port

from . import readme
from .venvs import Venv, VenvPool

pytestmark = [pytest.mark.install, pytest.mark.slow]

KEY = "sk-ant-api03-install-matrix-0000000000000000000000000000-TEST"
EXTRA_PACKAGES = ("redis", "yaml", "flask", "fastapi", "starlette", "django", "itsdangerous", "uvicorn")


@pytest.fixture(scope="module")
def core(venvs: VenvPool) -> Venv:
    return venvs.get("core")


@pytest.fixture
def thirty_seconds(tmp_path: Path) -> Path:
    (snippet,) = readme.blocks("Thirty seconds, no framework", "python")
    path = tmp_path / "thirty_seconds.py"
    path.write_text(snippet, encoding="utf-8")
    return path


def test_the_core_imports_alone(core: Venv, tmp_path: Path) -> None:
    code = (
        "import importlib.util, json, claude_rbac, claude_rbac.cli, claude_rbac.testing\n"
        f"extras = [name for name in {EXTRA_PACKAGES!r} if importlib.util.find_spec(name)]\n"
        "print(json.dumps({'file': claude_rbac.__file__, 'extras': extras}))"
    )
    found = json.loads(core.python_code(code, cwd=tmp_path).stdout)
    assert found["extras"] == []  # the venv really is bare
    assert Path(found["file"]).is_relative_to(core.path)


def test_the_thirty_second_snippet_runs_against_fake_claude(
    core: Venv, thirty_seconds: Path, fake_claude: FakeClaude
) -> None:
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake_claude.url}
    out = core.run(["python", str(thirty_seconds)], cwd=thirty_seconds.parent, env=env).stdout
    assert "403 {'type': 'error', 'error': {'type': 'permission_error'" in out
    assert "'error_code': 'model_not_allowed'" in out
    (sent,) = fake_claude.requests  # the opus call never left the process
    assert sent.json["max_tokens"] == 512


@contextlib.contextmanager
def fake_claude_process(core: Venv, cwd: Path, port: int) -> Iterator[str]:
    """``python -m claude_rbac.testing --port N`` from the venv, as the README's testing section runs it."""
    process = subprocess.Popen(
        [core.python, "-m", "claude_rbac.testing", "--port", str(port)],
        cwd=cwd,
        env=core.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.communicate(timeout=15)


def test_the_fake_claude_command_serves_your_app(core: Venv, thirty_seconds: Path) -> None:
    port = free_port()
    with fake_claude_process(core, thirty_seconds.parent, port) as url:
        assert url == f"http://127.0.0.1:{port}"  # printed on the first line
        env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": url}
        out = core.run(["python", str(thirty_seconds)], cwd=thirty_seconds.parent, env=env).stdout
    assert "'error_code': 'model_not_allowed'" in out


def test_the_command(core: Venv, tmp_path: Path) -> None:
    import claude_rbac

    assert (
        core.run(["claude-rbac", "--version"], cwd=tmp_path).stdout.strip() == f"claude-rbac {claude_rbac.__version__}"
    )
    (policy,) = readme.blocks("The policy file", "toml")
    (tmp_path / "rbac.toml").write_text(policy, encoding="utf-8")
    assert "OK, 4 role(s)" in core.run(["claude-rbac", "check", "rbac.toml"], cwd=tmp_path).stdout
    demo = core.run(["claude-rbac", "demo"], cwd=tmp_path).stdout
    assert "every denial was decided before sending" in demo


def test_a_redis_storage_without_redis_py_names_the_extra(core: Venv, tmp_path: Path) -> None:
    code = (
        "from claude_rbac import RBAC, Policy\n"
        "try:\n"
        "    RBAC(Policy.default(), storage='redis://127.0.0.1:6379/0')\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    assert core.python_code(code, cwd=tmp_path).stdout.strip() == (
        "A Redis storage needs redis-py: pip install 'claude-rbac[redis]'"
    )


def test_a_yaml_policy_without_pyyaml_names_the_extra(core: Venv, tmp_path: Path) -> None:
    (tmp_path / "rbac.yaml").write_text("version: 1\nroles:\n  user:\n    models: [claude-haiku-*]\n")
    result = core.run(["claude-rbac", "check", "rbac.yaml"], cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert "YAML policies need PyYAML: pip install 'claude-rbac[yaml]'" in result.stderr
    assert "Traceback" not in result.stderr
