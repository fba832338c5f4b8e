"""An async view under WSGI on Redis: each request runs its own event loop (Django wraps the view in
``async_to_sync``), so the async Redis client must belong to the request's loop, not to the first one.

Before, every request after the first failed with 503 ``backend_unavailable`` ("Event loop is closed").
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import pytest
import redis

from claude_rbac.testing import FakeClaude
from tests.support.redis import RedisServer

from .support import login

# Each request's loop ends with the request: the governed client must not keep HTTP connections across
# loops either, so FakeClaude closes each one (the Redis client is what this file is about).
OPTIONS = {"client_options": {"default_headers": {"Connection": "close"}}}


def test_every_request_gets_through(
    claude_settings: Any,
    make_user: Any,
    fake_claude: FakeClaude,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unclosed: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda raised: unclosed.append(repr(raised.object)))
    caplog.set_level(logging.WARNING, logger="claude_rbac")
    with RedisServer() as server:
        claude_settings(STORAGE=server.url, OPTIONS=OPTIONS)
        client = login(make_user(role="user"))
        watcher = redis.Redis.from_url(server.url)
        statuses, connected = [], []
        for n in range(4):
            body = json.dumps({"prompt": f"hi {n}"})
            response = client.post("/api/achat", data=body, content_type="application/json")
            statuses.append(response.status_code)
            connected.append(len(watcher.client_list()) - 1)  # the watcher's own connection aside
        watcher.close()
    assert statuses == [200, 200, 200, 200]
    assert fake_claude.count() == 4
    # Each request's Redis connection was closed when its loop ended: none piles up, none is left to the GC.
    assert connected == [0, 0, 0, 0]
    assert unclosed == []
    assert not [r for r in caplog.records if "storage failed" in r.getMessage()]
