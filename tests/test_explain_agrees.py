"""``claude-rbac explain`` and the governed client make the same decision: one table, replayed through both.

The runtime side is a real governed client against FakeClaude over HTTP; the CLI side is ``claude-rbac
explain`` on the same policy file. Each case ends the same way in both: sent with the same max_tokens,
refused for the same reason, or a 400 for a value that cannot be sent.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from claude_rbac import RBAC, InvalidRequest, Principal, RBACError
from claude_rbac.cli import main
from claude_rbac.testing import FakeClaude

POLICY = """\
version = 1
on_excess = "{on_excess}"

[roles.viewer]
allowed = false

[roles.user]
inherits = "viewer"
models = ["claude-haiku-*"]
max_tokens = 4096

[roles.admin]
inherits = "user"
models = ["claude-opus-*", "claude-sonnet-*"]
max_tokens = 32000
"""

CASES = [
    # (on_excess, role, model, max_tokens, stream)
    ("clamp", "user", "claude-haiku-4-5", 100, False),
    ("clamp", "user", "claude-haiku-4-5", 100_000, False),  # clamped to 4096 before the SDK's 10-minute rule
    ("clamp", "user", "claude-opus-4-7", 100, False),
    ("clamp", "viewer", "claude-haiku-4-5", 100, False),
    ("clamp", "ghost", "claude-haiku-4-5", 100, False),
    ("clamp", "admin", "claude-opus-4-7", 100_000, False),  # the cap itself needs streaming: a 400
    ("clamp", "admin", "claude-opus-4-7", 100_000, True),  # streaming: clamped to 32000
    ("clamp", "admin", "claude-sonnet-4-6", 21_333, False),
    ("clamp", "admin", "claude-sonnet-4-6", 21_334, False),
    ("reject", "user", "claude-haiku-4-5", 5000, False),
    ("reject", "user", "claude-haiku-4-5", 4096, False),
    ("clamp", "user", "Claude-Haiku-4-5", 10, False),
]


def runtime(rbac: RBAC, fake: FakeClaude, role: str, model: str, max_tokens: int, stream: bool) -> tuple[str, Any]:
    before = fake.count()
    claude = rbac.client(Principal("someone", role))
    try:
        if stream:
            with claude.messages.stream(
                model=model, max_tokens=max_tokens, messages=[{"role": "user", "content": "?"}]
            ) as s:
                s.get_final_message()
        else:
            claude.messages.create(model=model, max_tokens=max_tokens, messages=[{"role": "user", "content": "?"}])
    except InvalidRequest:
        return "invalid", None
    except RBACError as exc:
        return "denied", exc.reason
    assert fake.count() == before + 1
    return "sent", fake.requests[-1].json["max_tokens"]


def cli(
    path: Path, capsys: pytest.CaptureFixture[str], role: str, model: str, max_tokens: int, stream: bool
) -> tuple[str, Any]:
    argv = ["explain", str(path), "--role", role, "--model", model, "--max-tokens", str(max_tokens)]
    code = main([*argv, "--stream"] if stream else argv)
    out = capsys.readouterr()
    if code == 2:
        return "invalid", None
    if code == 1:
        (reason,) = re.findall(r"^denied \((\w+)\)", out.out, re.M)
        return "denied", reason
    assert code == 0
    clamped = re.search(r"max_tokens \d+ is clamped to (\d+)", out.out)
    return "sent", int(clamped.group(1)) if clamped else max_tokens


@pytest.mark.parametrize(("on_excess", "role", "model", "max_tokens", "stream"), CASES)
def test_explain_and_the_runtime_agree(
    fake_claude: FakeClaude,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    on_excess: str,
    role: str,
    model: str,
    max_tokens: int,
    stream: bool,
) -> None:
    path = tmp_path / "rbac.toml"
    path.write_text(POLICY.format(on_excess=on_excess))
    with RBAC(
        path, api_key="sk-ant-api03-explain-agrees-000000000000000000000000-EXPL", base_url=fake_claude.url
    ) as rbac:
        at_runtime = runtime(rbac, fake_claude, role, model, max_tokens, stream)
    assert cli(path, capsys, role, model, max_tokens, stream) == at_runtime


def test_the_table_covers_every_outcome(fake_claude: FakeClaude, tmp_path: Path) -> None:
    outcomes = set()
    for on_excess, role, model, max_tokens, stream in CASES:
        path = tmp_path / f"{on_excess}.toml"
        path.write_text(POLICY.format(on_excess=on_excess))
        with RBAC(
            path, api_key="sk-ant-api03-explain-agrees-000000000000000000000000-EXPL", base_url=fake_claude.url
        ) as rbac:
            outcomes.add(runtime(rbac, fake_claude, role, model, max_tokens, stream)[0])
    assert outcomes == {"sent", "denied", "invalid"}
