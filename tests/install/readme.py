"""What the README tells a user to type and to save, read from the README itself."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def section(title: str) -> str:
    """The text of ``## title`` up to the next ``## `` heading."""
    text = README.read_text(encoding="utf-8")
    heading = f"\n## {title}\n"
    assert heading in text, f"README.md has no section {title!r}"
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def blocks(title: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section(title), re.S)


def shell_lines(title: str) -> list[list[str]]:
    """The words of each command in the section's ``sh`` and ``bash`` blocks (continued lines joined)."""
    text = "\n".join(blocks(title, "(?:sh|bash)")).replace("\\\n", " ")
    return [words for line in text.splitlines() if (words := shlex.split(line, comments=True))]


def install_line(title: str) -> list[str]:
    """The arguments of the section's first ``pip install`` line, e.g. ``['claude-rbac[fastapi]', 'uvicorn']``."""
    for words in shell_lines(title):
        if words[:2] == ["pip", "install"]:
            return words[2:]
    raise AssertionError(f"README.md's {title!r} section has no pip install line")


def command(title: str, program: str) -> list[str]:
    """The section's first command that runs ``program``, without the variables set before it."""
    for words in shell_lines(title):
        assignments = 0
        while assignments < len(words) and "=" in words[assignments]:
            assignments += 1
        if words[assignments : assignments + 1] == [program]:
            return words[assignments:]
    raise AssertionError(f"README.md's {title!r} section never runs {program}")


def requirements(title: str, wheel: Path) -> list[str]:
    """The section's install line, with the wheel under test standing in for ``claude-rbac``."""
    return [re.sub(r"^claude-rbac(?=\[|$)", str(wheel), word) for word in install_line(title)]


def run_command(title: str) -> list[str]:
    """The command the section runs the app with: ``... run it with `ANTHROPIC_API_KEY=sk-ant-... CMD` ``."""
    (command,) = re.findall(r"`ANTHROPIC_API_KEY=sk-ant-\.\.\. ([^`]+)`", section(title))
    return shlex.split(command)
