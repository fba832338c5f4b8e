"""The README's snippets run as written (against FakeClaude, through the SDK's own environment variables)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from claude_rbac.testing import FakeClaude

README = (Path(__file__).parents[1] / "README.md").read_text()


def python_blocks_after(heading: str) -> list[str]:
    section = README.split(heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_thirty_second_example(
    fake_claude: FakeClaude, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-readme-example-0000000000000000000000000000-READ")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_claude.url)
    (snippet,) = python_blocks_after("## Thirty seconds, no framework")
    exec(compile(snippet, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "403 {'type': 'error', 'error': {'type': 'permission_error'" in out
    assert "model_not_allowed" in out
    (sent,) = fake_claude.requests  # the opus call never left the process
    assert sent.json["max_tokens"] == 512


def test_the_policy_in_the_readme_loads(tmp_path: Path) -> None:
    from claude_rbac import Policy

    (toml,) = re.findall(r"```toml\n(.*?)```", README.split("## The policy file", 1)[1].split("\n## ", 1)[0], re.S)
    path = tmp_path / "rbac.toml"
    path.write_text(toml)
    policy = Policy.from_file(path)
    assert policy.roles["user"].tpm == 50000
    assert policy.roles["power"].pool_tpm == 400000
    assert policy.roles["admin"].models == ("claude-sonnet-*", "claude-opus-*", "claude-haiku-*")


def test_the_workspace_example_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from claude_rbac import Policy

    (toml,) = re.findall(r"```toml\n(.*?)```", README.split("## Keys and workspaces", 1)[1].split("\n## ", 1)[0], re.S)
    path = tmp_path / "rbac.toml"
    path.write_text(toml)
    policy = Policy.from_file(path)
    assert policy.roles["intern"].workspace == "development"
    assert policy.settings.default_workspace == "production"


@pytest.mark.parametrize("framework", ["flask", "fastapi", "starlette", "django", "audit"])
def test_framework_examples_are_the_tested_docs_verbatim(framework: str) -> None:
    """The README shows each framework's example from docs/<framework>.md, which that framework's tests run."""
    docs = (Path(__file__).parents[1] / "docs" / f"{framework}.md").read_text()
    title = {
        "flask": "Flask",
        "fastapi": "FastAPI",
        "starlette": "Starlette",
        "django": "Django",
        "audit": "Audit trail",
    }[framework]
    section = README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:python|toml|text|yaml)\n(.*?)```", section, re.S)
    assert blocks
    for block in blocks:
        assert block in docs


@pytest.mark.parametrize(
    ("framework", "title"),
    [("flask", "Flask"), ("fastapi", "FastAPI"), ("starlette", "Starlette"), ("django", "Django")],
)
def test_the_docs_install_what_the_readme_installs(framework: str, title: str) -> None:
    """docs/<framework>.md opens with the README section's install line (tests/install runs the README's)."""
    docs = (Path(__file__).parents[1] / "docs" / f"{framework}.md").read_text()
    section = README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    readme_line = re.search(r"^pip install .*$", section, re.M)
    docs_line = re.search(r"^pip install .*$", docs, re.M)
    assert readme_line is not None
    assert docs_line is not None
    assert docs_line.group(0) == readme_line.group(0)


def test_the_spend_example(
    fake_claude: FakeClaude, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-readme-example-0000000000000000000000000000-READ")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_claude.url)
    toml, snippet = re.findall(
        r"```(?:toml|python)\n(.*?)```", README.split("## Spend in dollars", 1)[1].split("\n## ", 1)[0], re.S
    )
    monkeypatch.setenv("STAGING_KEY", "sk-ant-api03-readme-example-0000000000000000000000000000-STAG")
    from claude_rbac import Policy
    from claude_rbac.policy._read import tomllib

    policy = Policy.from_dict({"version": 1, **tomllib.loads(toml)})
    assert policy.roles["intern"].workspace_spend.month == 200_000_000
    exec(compile(snippet, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("429 spend_limit_exceeded ")
    scope, period, limit, used, remaining, _ = out[1].split(" ", 5)
    assert (scope, period, limit) == ("principal", "day", "0.001")
    assert Decimal(used) > 0
    assert Decimal(used) + Decimal(remaining) == Decimal("0.001") or Decimal(remaining) == 0
