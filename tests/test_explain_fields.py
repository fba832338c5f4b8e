"""``claude-rbac explain`` asks about the request fields too (issue #15), and answers as the governed client does:
each case runs through the command and through a real governed client against FakeClaude."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from claude_rbac import RBAC, Principal, RBACError
from claude_rbac.cli import main
from claude_rbac.testing import FakeClaude

POLICY = str(Path(__file__).parents[1] / "examples" / "rbac.toml")
KEY = "sk-ant-api03-explain-fields-tests-000000000000000000000000-EXFD"
HAIKU = "claude-haiku-4-5"
SEARCH = "web_search_20260318"
CODE = "code_execution_20250825"
MCP = "https://mcp.example.com/sse"
DEFAULTS = {"speed": "standard", "service_tier": "auto"}
SERVER = {"type": "url", "url": MCP, "name": "m"}

CASES: list[tuple[str, list[str], dict[str, Any], str]] = [
    # (role, explain options, what the SDK call sends, the decision's reason)
    ("user", ["--tool", SEARCH], {"tools": [{"type": SEARCH, "name": SEARCH}]}, "tool_not_allowed"),
    ("power", ["--tool", SEARCH], {"tools": [{"type": SEARCH, "name": SEARCH}]}, "allowed"),
    ("admin", ["--tool", CODE], {"tools": [{"type": CODE, "name": "c"}]}, "allowed"),
    ("power", ["--tool", CODE], {"tools": [{"type": CODE, "name": "c"}]}, "tool_not_allowed"),
    ("admin", ["--speed", "fast"], {"speed": "fast"}, "speed_not_allowed"),
    ("user", ["--speed", "standard", "--service-tier", "auto"], DEFAULTS, "allowed"),
    ("admin", ["--service-tier", "priority"], {"service_tier": "priority"}, "service_tier_not_allowed"),
    ("admin", ["--inference-geo", "us"], {"inference_geo": "us"}, "inference_geo_not_allowed"),
    ("admin", ["--beta", "mcp-client-2025-11-20"], {"betas": ["mcp-client-2025-11-20"]}, "beta_not_allowed"),
    ("admin", ["--mcp-server", MCP], {"mcp_servers": [SERVER]}, "mcp_server_not_allowed"),
    ("user", ["--workspace-id", "wrkspc_01"], {"workspace_id": "wrkspc_01"}, "workspace_not_allowed"),
]  # fmt: skip


def runtime(fake: FakeClaude, role: str, sent: dict[str, Any]) -> str:
    body = {key: value for key, value in sent.items() if key not in ("betas", "workspace_id")}
    headers = {key: value for key, value in sent.items() if key in ("betas", "workspace_id")}
    with RBAC(POLICY, api_key=KEY, base_url=fake.url) as rbac:
        claude = rbac.client(Principal("someone", role)).beta.messages
        try:
            claude.create(
                model=HAIKU, max_tokens=10, messages=[{"role": "user", "content": "?"}], extra_body=body, **headers
            )
        except RBACError as exc:
            return exc.reason
    return "allowed"


@pytest.mark.parametrize(("role", "options", "sent", "reason"), CASES)
def test_explain_and_the_governed_client_agree(
    fake_claude: FakeClaude,
    capsys: pytest.CaptureFixture[str],
    role: str,
    options: list[str],
    sent: dict[str, Any],
    reason: str,
) -> None:
    code = main(["explain", POLICY, "--role", role, "--model", HAIKU, *options])
    out = capsys.readouterr().out
    assert runtime(fake_claude, role, sent) == reason
    if reason == "allowed":
        assert code == 0
        assert out.startswith(f"allowed: role {role!r}")
    else:
        assert code == 1
        assert out.startswith(f"denied ({reason}):")
        assert "  rule:" in out


def test_explain_names_the_grant_that_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", POLICY, "--role", "power", "--model", HAIKU, "--tool", "bash_20250124"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "denied (tool_not_allowed): Role 'power' may not use the 'bash_20250124' tool."
    assert out[1:] == [
        "  rule: no entry of roles.power.tools (with inherited ones and the defaults) allows it",
        "  tools: web_search, custom",
    ]


def test_explain_lists_the_fields_an_allowed_call_asks_for(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["explain", POLICY, "--role", "admin", "--model", HAIKU, "--tool", SEARCH, "--tool", "custom"]
    assert main(argv) == 0
    assert f"  tools: {SEARCH}, custom" in capsys.readouterr().out.splitlines()
