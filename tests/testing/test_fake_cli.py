"""``python -m claude_rbac.testing``: documented flags, and a server an app reaches through ANTHROPIC_BASE_URL."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from claude_rbac.testing.__main__ import _parser, main
from tests.testing.sdk import MESSAGES, MODEL


def test_help_describes_every_flag_and_how_to_point_an_app_at_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "ANTHROPIC_BASE_URL=http://127.0.0.1:" in text
    flags = [action for action in _parser()._actions if action.option_strings]
    assert all(action.help for action in flags)
    for flag in ("--port", "--usage-json", "--cache-read", "--cache-write", "--priority", "--org-id", "--stream-delay"):
        assert flag in text


@pytest.mark.parametrize("content", ["not json", "[]", "[1, 2]", '"a string"'])
def test_a_bad_usage_file_is_a_usage_error(tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "usage.json"
    path.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["--usage-json", str(path)])
    assert exit_info.value.code == 2
    assert "--usage-json" in capsys.readouterr().err


@contextlib.contextmanager
def serve(*args: str) -> Iterator[str]:
    """The URL of a FakeClaude served by ``python -m claude_rbac.testing *args``, stopped with SIGTERM after."""
    command = [sys.executable, "-m", "claude_rbac.testing", *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            yield process.stdout.readline().strip()
        finally:
            process.terminate()
            assert process.wait(timeout=10) == 0


@pytest.fixture
def usage_file(tmp_path: Path) -> Path:
    path = tmp_path / "usage.json"
    path.write_text(json.dumps([{"cache_read_input_tokens": 900, "server_tool_use": {"web_search_requests": 2}}]))
    return path


@pytest.mark.slow
def test_a_served_fake_answers_the_usage_it_was_given(usage_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve("--usage-json", str(usage_file), "--priority", "--output-tokens", "4") as url:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-placeholder")
        with anthropic.Anthropic(max_retries=0) as sdk:
            scripted = sdk.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES).usage
            computed = sdk.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES).usage
    assert scripted.cache_read_input_tokens == 900
    assert scripted.server_tool_use is not None
    assert (scripted.server_tool_use.web_search_requests, scripted.server_tool_use.web_fetch_requests) == (2, 0)
    assert (computed.cache_read_input_tokens, computed.output_tokens, computed.service_tier) == (0, 4, "priority")


@pytest.mark.slow
def test_fixed_cache_figures_from_the_shell() -> None:
    with (
        serve("--cache-read", "70", "--cache-write", "30", "--port", "0") as url,
        anthropic.Anthropic(api_key="sk-ant-placeholder", base_url=url, max_retries=0) as sdk,
    ):
        usage = sdk.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES).usage
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (70, 30)
