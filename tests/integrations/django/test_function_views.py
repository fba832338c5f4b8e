"""Function views under Django's test client: who gets in, what reaches Claude, and the error bodies."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from claude_rbac.testing import FakeClaude

from .project import AUTH_MIDDLEWARE, OPUS, SESSION_MIDDLEWARE, SONNET, VIEWERS
from .support import error_of, login, post


def test_anonymous_gets_401_and_nothing_reaches_claude(client: Any, fake_claude: FakeClaude) -> None:
    response = post(client, "/api/chat", prompt="hi")
    assert response.status_code == 401
    assert error_of(response) == {
        "type": "authentication_error",
        "message": "Sign in to use this route.",
        "error_code": "unauthenticated",
    }
    assert fake_claude.count() == 0


FORGERIES: dict[str, Any] = {
    "headers": {
        "X-Role": "admin",
        "X-Claude-Role": "admin",
        "X-User": "admin",
        "X-Forwarded-User": "admin",
        "X-Remote-User": "admin",
        "Remote-User": "admin",
        "Authorization": "Bearer admin",
    },
    "query": {"role": "admin", "principal": "admin", "user": "admin"},
    "cookies": {"role": "admin", "principal": "admin", "claude_role": "admin"},
}


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "viewer"])
def test_forged_headers_query_and_cookies_change_nothing(
    claude_settings: Any, make_user: Any, fake_claude: FakeClaude, signed_in: bool
) -> None:
    from django.test import Client

    client = login(make_user(groups=[VIEWERS])) if signed_in else Client()
    for name, value in FORGERIES["cookies"].items():
        client.cookies[name] = value
    expected = 403 if signed_in else 401
    admin = client.get("/admin", FORGERIES["query"], headers=FORGERIES["headers"])
    assert admin.status_code == expected
    chat = client.post(
        "/api/chat?role=admin",
        data=json.dumps({"prompt": "hi", "role": "admin"}),
        content_type="application/json",
        headers=FORGERIES["headers"],
    )
    assert chat.status_code == expected
    whoami = client.get("/whoami", FORGERIES["query"], headers=FORGERIES["headers"]).json()["principal"]
    assert whoami is None or whoami[1] == "viewer"
    assert fake_claude.count() == 0


def test_route_scope_narrows_models_and_clamps_max_tokens(client: Any, make_user: Any, fake_claude: FakeClaude) -> None:
    power = login(make_user(role="power"))
    denied = post(power, "/api/long", prompt="hi", model=SONNET)  # power may use sonnet, the route may not
    assert denied.status_code == 403
    assert error_of(denied) == {
        "type": "permission_error",
        "message": f"This route allows only claude-opus-*, not model {SONNET!r}.",
        "error_code": "model_not_allowed",
    }
    assert fake_claude.count() == 0
    allowed = post(power, "/api/long", prompt="hi", max_tokens=4000)
    assert allowed.status_code == 200
    assert fake_claude.calls()[0].json["max_tokens"] == 100  # the route's cap, below power's 4096


def test_a_user_asking_for_a_model_above_the_role_gets_403(
    client: Any, make_user: Any, fake_claude: FakeClaude
) -> None:
    response = post(login(make_user(role="user")), "/api/chat", prompt="hi", model=OPUS)
    assert response.status_code == 403
    assert error_of(response)["error_code"] == "model_not_allowed"
    assert fake_claude.count() == 0


def test_rpm_limit_answers_429_with_retry_after(
    claude_settings: Any, make_user: Any, fake_claude: FakeClaude, storage: str, key_prefix: str
) -> None:
    claude_settings(STORAGE=storage, KEY_PREFIX=key_prefix)
    client = login(make_user(role="user"))
    statuses = [post(client, "/api/chat/limited", prompt="hi").status_code for _ in range(2)]
    assert statuses == [200, 200]
    limited = post(client, "/api/chat/limited", prompt="hi")
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert error_of(limited)["type"] == "rate_limit_error"
    assert error_of(limited)["error_code"] == "rate_limited"
    assert fake_claude.count() == 2


def test_an_unguarded_view_cannot_reach_claude(client: Any, make_user: Any, fake_claude: FakeClaude) -> None:
    # request.claude exists on every request, but only a guard that admitted the request makes it usable.
    for who in (None, make_user(role="user"), make_user(role="admin")):
        with pytest.raises(RuntimeError, match="only available in a view guarded by requires_role"):
            post(client if who is None else login(who), "/api/chat/unguarded", prompt="hi")
    assert fake_claude.count() == 0


def broken_resolver(request: Any) -> Any:
    raise RuntimeError("the directory is down")


def resolver_returning_a_dict(request: Any) -> Any:
    return {"id": "mallory", "role": "admin"}


async def async_session_resolver(request: Any) -> Any:
    from claude_rbac import Principal

    user = await request.auser()
    return Principal(id=f"async-{user.pk}", role="admin") if user.is_authenticated else None


@pytest.mark.parametrize("resolver", ["broken_resolver", "resolver_returning_a_dict"])
def test_a_failing_resolver_denies(
    claude_settings: Any, make_user: Any, fake_claude: FakeClaude, caplog: pytest.LogCaptureFixture, resolver: str
) -> None:
    claude_settings(PRINCIPAL_LOADER=f"{__name__}.{resolver}")
    client = login(make_user(role="admin"))
    with caplog.at_level(logging.ERROR, logger="claude_rbac"):
        response = post(client, "/api/chat", prompt="hi")
    assert response.status_code == 401
    assert error_of(response)["error_code"] == "unauthenticated"
    assert any(resolver in record.getMessage() for record in caplog.records)
    assert fake_claude.count() == 0


def test_an_async_resolver_works_in_sync_requests(
    claude_settings: Any, make_user: Any, fake_claude: FakeClaude
) -> None:
    claude_settings(PRINCIPAL_LOADER=f"{__name__}.async_session_resolver")
    user = make_user()
    response = login(user).get("/admin")
    assert response.status_code == 200
    assert login(user).get("/whoami").json()["principal"] == [f"async-{user.pk}", "admin"]


def test_guard_without_the_middleware_is_a_configuration_error(client: Any, make_user: Any) -> None:
    with (
        override_settings(MIDDLEWARE=[SESSION_MIDDLEWARE, AUTH_MIDDLEWARE]),
        pytest.raises(ImproperlyConfigured, match="RBACMiddleware"),
    ):
        login(make_user(role="admin")).get("/admin")


def test_shadow_mode_records_the_denial_and_lets_the_view_run(
    claude_settings: Any, make_user: Any, span_exporter: Any
) -> None:
    claude_settings(OPTIONS={"mode": "shadow"})
    response = login(make_user(role="viewer")).get("/admin")
    assert response.status_code == 200
    (decision,) = [span for span in span_exporter.get_finished_spans() if span.name == "claude_rbac.authorize"]
    assert decision.attributes["claude_rbac.decision"] == "deny"
    assert decision.attributes["claude_rbac.enforced"] is False


def test_bad_declarations_fail_at_import_time() -> None:
    from claude_rbac import PolicyError
    from claude_rbac.integrations.django import RoleRequiredMixin, requires_role

    with pytest.raises(PolicyError, match="max_tokens"):
        requires_role("user", max_tokens=0)
    with pytest.raises(PolicyError, match="rpm"):

        class TooFast(RoleRequiredMixin):
            required_role = "user"
            claude_rpm = -1

    with pytest.raises(TypeError, match="needs a role name"):
        requires_role("")


@pytest.mark.parametrize(("style", "prefix"), [("ietf", "RateLimit"), ("x", "X-RateLimit")])
def test_opt_in_rate_limit_headers(
    claude_settings: Any, make_user: Any, fake_claude: FakeClaude, style: str, prefix: str
) -> None:
    claude_settings(RATE_LIMIT_HEADERS=style)
    client = login(make_user(role="user"))
    response = post(client, "/api/chat/limited", prompt="hi")  # requires_role("user", rpm=2)
    assert response.status_code == 200
    assert (response[f"{prefix}-Limit"], response[f"{prefix}-Remaining"]) == ("2", "1")
    assert 0 <= int(response[f"{prefix}-Reset"]) <= 60
    assert fake_claude.count() == 1


def test_no_rate_limit_headers_unless_asked(client: Any, make_user: Any) -> None:
    response = post(login(make_user(role="user")), "/api/chat/limited", prompt="hi")
    assert response.status_code == 200
    assert not any(name.lower().startswith(("ratelimit", "x-ratelimit")) for name in response.headers)
