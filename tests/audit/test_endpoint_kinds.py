"""The same trace from endpoints that run elsewhere than the request's thread or loop.

A Flask ``async def`` view runs in an event loop of its own; a Starlette ``def`` endpoint runs in a worker
thread. The OTel context has to travel with them, or the SDK's call span would start a trace of its own.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from claude_rbac.testing import FakeClaude

from .apps.common import HAIKU, OPUS, Harness
from .trail import SENTINEL_PROMPT, AuditTrail, assert_direct_links, attributes, render

MakeApp = Callable[..., Harness]


@pytest.mark.parametrize(("framework", "path"), [("flask", "/achat"), ("starlette", "/schat")])
def test_the_tree_holds_across_threads_and_loops(
    framework: str, path: str, make_app: MakeApp, trail: AuditTrail, fake_claude: FakeClaude
) -> None:
    app = make_app()
    assert app.post(path, "uma", {"prompt": SENTINEL_PROMPT}).status == 200
    assert app.post(path, "vera", {"prompt": SENTINEL_PROMPT}).status == 403
    assert [call.json["model"] for call in fake_claude.calls()] == [HAIKU]
    assert render(trail.spans, collapse=app.framework_spans) == [
        f"SERVER POST {path} -> allow/allowed",
        "  INTERNAL claude_rbac.authorize -> allow/allowed",
        "  CLIENT anthropic.messages.create -> allow/allowed",
        "    INTERNAL claude_rbac.authorize -> allow/allowed",
        f"SERVER POST {path} -> deny/role_insufficient",
        "  INTERNAL claude_rbac.authorize -> deny/role_insufficient",
    ]
    assert_direct_links(trail)
    assert {attributes(span)["claude_rbac.route"] for span in trail.named("claude_rbac.authorize")} == {path}
    trail.assert_no_secrets()


@pytest.mark.parametrize("framework", ["flask"])
def test_a_refused_call_from_an_async_view(
    framework: str, make_app: MakeApp, trail: AuditTrail, fake_claude: FakeClaude
) -> None:
    app = make_app()
    reply = app.post("/achat", "uma", {"prompt": SENTINEL_PROMPT, "model": OPUS})
    assert (reply.status, reply.json()["error"]["error_code"]) == (403, "model_not_allowed")
    assert fake_claude.requests == []
    assert render(trail.spans) == [
        "SERVER POST /achat -> allow/allowed",
        "  INTERNAL claude_rbac.authorize -> allow/allowed",
        "  CLIENT anthropic.messages.create -> deny/model_not_allowed",
        "    INTERNAL claude_rbac.authorize -> deny/model_not_allowed",
    ]
    trail.assert_no_secrets()
