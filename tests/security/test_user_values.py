"""A user's max_tokens is never a 500: every integration answers a bad one with a 400, a huge one with the cap.

The request body's value reaches the governed client as the user sent it (the example apps and the mirror
apps pass it through), so this is the governed client's answer, through each framework's HTTP stack.
"""

from __future__ import annotations

from typing import Any

import pytest

from claude_rbac.testing import FakeClaude

from ._support import INTEGRATIONS, Target, error_of, serve

BAD_VALUES = ["100", "", 1.5, True, False, -1, 0, [100], {"n": 1}, 2**70]
"""(A JSON null means "not given" to the example apps, which then use their default: the governed client
refuses a None it is handed, see tests/test_client.py.)"""


@pytest.fixture(params=INTEGRATIONS)
def target(request: pytest.FixtureRequest, fake_claude: FakeClaude) -> Any:
    with serve(request.param, fake_claude) as served:
        yield served


def test_a_huge_max_tokens_is_clamped_to_the_cap_not_a_500(target: Target) -> None:
    session, _ = target.login("paul")  # power: opus, capped at 4096, non-streaming
    response = target.send("POST", "/api/long", cookies=session, json={"prompt": "hi", "max_tokens": 100_000})
    assert response.status_code == 200, response.text
    assert target.fake.requests[-1].json["max_tokens"] == 4096


@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
def test_a_bad_max_tokens_is_a_400_in_the_anthropic_shape(target: Target, value: object) -> None:
    session, _ = target.login("uma")
    response = target.send("POST", "/api/chat", cookies=session, json={"prompt": "hi", "max_tokens": value})
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert (error["type"], error["error_code"]) == ("invalid_request_error", "invalid_request")
    assert "max_tokens" in error["message"]
    assert target.fake.count() == 0
