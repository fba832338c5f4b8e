"""Roles never come from client input, in every integration.

Each integration serves the shared JSON API (the Flask, FastAPI and Django examples themselves; a mirror
app for the WSGI and ASGI middlewares and Starlette, see ``_support``). Whatever a client forges (an
``X-Role``/``X_Role`` header, a ``role`` query parameter, form field, JSON field or cookie, a forged or
tampered session cookie, or anything hypothesis makes up), a signed-in user stays a user: 403 on the admin
and power routes, and the governed client still refuses opus. An anonymous caller stays anonymous: 401.
FakeClaude receives nothing for a refused call, and the decision spans never name a role above "user".
A forged path fares no better: percent-encoded dot segments (``/admin/%2e%2e``) never slip past a path rule.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from flask import Flask
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from claude_rbac import RBAC, Principal
from claude_rbac.integrations.flask import ClaudeRBAC
from claude_rbac.integrations.wsgi import RBACMiddleware
from claude_rbac.testing import FakeClaude

from ._support import HAIKU, INTEGRATIONS, OPUS, USER_MAX_TOKENS, Target, error_of, make_rbac, serve


@dataclass(frozen=True)
class Forgery:
    """What a client adds to every request: headers, query parameters, cookies and body fields."""

    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, str] = field(default_factory=dict)
    form: bool = False
    """Send the login and power-route bodies urlencoded (the chat route takes JSON only)."""

    def options(self, body: Mapping[str, Any] | None = None, *, form: bool = False) -> dict[str, Any]:
        """Request options carrying the forgery; the real ``body`` keys win over forged fields of the same name."""
        options: dict[str, Any] = {"headers": dict(self.headers), "params": dict(self.params)}
        if body is not None:
            options["data" if form else "json"] = {**self.fields, **body}
        return options


FORGERIES = {
    "X-Role header": Forgery(headers={"X-Role": "admin"}),
    "X_Role header": Forgery(headers={"X_Role": "admin"}),
    "role query": Forgery(params={"role": "admin"}),
    "role form field": Forgery(fields={"role": "admin"}, form=True),
    "role JSON field": Forgery(fields={"role": "admin"}),
    "role cookie": Forgery(cookies={"role": "admin"}),
    "all at once": Forgery(
        headers={"X-Role": "admin", "X_Role": "admin", "X-User": "ada", "Remote-User": "ada"},
        params={"role": "admin", "user": "ada"},
        cookies={"role": "admin", "user": "ada", "claude_rbac_role": "admin"},
        fields={"role": "admin", "user": "ada", "principal": "ada:admin"},
    ),
}

PROMPT = {"prompt": "Hello"}
UMA = Principal("uma", "user")


@pytest.fixture(params=INTEGRATIONS)
def target(request: pytest.FixtureRequest, fake_claude: FakeClaude) -> Iterator[Target]:
    with serve(request.param, fake_claude) as served:
        yield served


def refused_calls(target: Target, forgery: Forgery, session: Mapping[str, str]) -> dict[str, httpx.Response]:
    """The admin page, the power route and an opus call on the user route, each carrying the forgery."""
    cookies = {**forgery.cookies, **session}
    return {
        "admin page": target.send("GET", "/admin", cookies=cookies, **forgery.options()),
        "power route": target.send(
            "POST", "/api/long", cookies=cookies, **forgery.options({**PROMPT, "model": OPUS}, form=forgery.form)
        ),
        "opus on the user route": target.send(
            "POST", "/api/chat", cookies=cookies, **forgery.options({**PROMPT, "model": OPUS})
        ),
    }


def roles_decided(exporter: InMemorySpanExporter) -> set[str]:
    """Every role a ``claude_rbac.authorize`` span recorded: what the library believed each caller was."""
    return {
        role
        for span in exporter.get_finished_spans()
        if span.name == "claude_rbac.authorize"
        for role in (span.attributes or {}).get("user.roles", ())
    }


@pytest.mark.parametrize("forgery", FORGERIES.values(), ids=FORGERIES.keys())
def test_an_anonymous_caller_stays_anonymous(
    target: Target, forgery: Forgery, span_exporter: InMemorySpanExporter
) -> None:
    assert target.whoami(forgery.cookies, **forgery.options()) == (None, None)
    answers = refused_calls(target, forgery, {})
    answers["haiku on the user route"] = target.send(
        "POST", "/api/chat", cookies=forgery.cookies, **forgery.options(PROMPT)
    )
    for what, response in answers.items():
        assert response.status_code == 401, (what, response.text)
        assert error_of(response)["error_code"] == "unauthenticated", what
    assert target.fake.requests == []
    assert roles_decided(span_exporter) == set()


@pytest.mark.parametrize("forgery", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_signed_in_user_stays_a_user(target: Target, forgery: Forgery, span_exporter: InMemorySpanExporter) -> None:
    session, signed_in = target.login(
        "uma", cookies=forgery.cookies, **forgery.options({"username": "uma"}, form=forgery.form)
    )
    assert signed_in == {"user": "uma", "role": "user"}
    assert target.whoami({**forgery.cookies, **session}, **forgery.options()) == ("uma", "user")

    answers = refused_calls(target, forgery, session)
    assert {what: response.status_code for what, response in answers.items()} == dict.fromkeys(answers, 403)
    assert error_of(answers["admin page"])["error_code"] == "role_insufficient"
    assert error_of(answers["power route"])["error_code"] == "role_insufficient"
    assert error_of(answers["opus on the user route"])["error_code"] == "model_not_allowed"
    assert target.fake.requests == [], "a refused call reached Claude"

    # The same forged request on what a user may do: answered, as the user, within the user's limits.
    allowed = target.send("POST", "/api/chat", cookies={**forgery.cookies, **session}, **forgery.options(PROMPT))
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["model"] == HAIKU
    (sent,) = target.fake.calls()
    assert sent.json["model"] == HAIKU
    assert sent.json["max_tokens"] <= USER_MAX_TOKENS
    assert roles_decided(span_exporter) == {"user"}


# -- generated forgeries ----------------------------------------------------------------------------

NAME_CORES = (
    "role",
    "roles",
    "user-role",
    "user_role",
    "user",
    "username",
    "principal",
    "remote-user",
    "group",
    "groups",
    "auth-role",
    "claude-rbac-role",
    "claude_rbac.principal",
    "is-admin",
    "admin",
    "scope",
    "permissions",
)
PREFIXES = ("", "x-", "x_", "X-", "X-Forwarded-", "X-Original-", "X-Auth-", "HTTP_", "X-Amzn-Oidc-")
STYLES = (str, str.upper, str.title, lambda name: name.replace("-", "_"), lambda name: name.replace("_", "-"))
TOKEN = string.ascii_letters + string.digits + "-_"
NAMES = st.builds(
    lambda prefix, core, style: style(prefix + core), *map(st.sampled_from, (PREFIXES, NAME_CORES, STYLES))
)
COOKIE_NAMES = st.builds(lambda core, style: style(core), st.sampled_from(NAME_CORES), st.sampled_from(STYLES))
ROLE_WORDS = ("admin", "power", "ada", "paul", "Admin", "ADMIN", "admin,user", "user;admin", "ada:admin", "true", "*")
VALUES = st.one_of(st.sampled_from(ROLE_WORDS), st.text(alphabet=TOKEN + ".:,;= ", min_size=1, max_size=16))
COOKIE_VALUES = st.one_of(st.sampled_from(ROLE_WORDS[:6]), st.text(alphabet=TOKEN + ".", min_size=1, max_size=16))
FORGED = st.builds(
    Forgery,
    headers=st.dictionaries(NAMES, VALUES.map(str.strip).filter(bool), max_size=4),
    params=st.dictionaries(NAMES, VALUES, max_size=3),
    cookies=st.dictionaries(COOKIE_NAMES.filter(lambda name: set(name) <= set(TOKEN)), COOKIE_VALUES, max_size=3),
    fields=st.dictionaries(NAMES, VALUES, max_size=3),
)


def test_generated_forgeries_change_nothing(target: Target, span_exporter: InMemorySpanExporter) -> None:
    session, _ = target.login("uma")

    @given(forgery=FORGED)
    @settings(max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    def forged_requests(forgery: Forgery) -> None:
        assume(forgery.headers or forgery.params or forgery.cookies or forgery.fields)
        anonymous = target.send("GET", "/admin", cookies=forgery.cookies, **forgery.options())
        assert anonymous.status_code == 401, anonymous.text
        assert target.whoami(forgery.cookies, **forgery.options()) == (None, None)
        assert target.whoami({**forgery.cookies, **session}, **forgery.options()) == ("uma", "user")
        user = refused_calls(target, forgery, session)
        assert [response.status_code for response in user.values()] == [403, 403, 403]
        assert error_of(user["opus on the user route"])["error_code"] == "model_not_allowed"

    forged_requests()
    assert target.fake.requests == []
    assert roles_decided(span_exporter) == {"user"}


# -- forged and tampered session cookies -------------------------------------------------------------


def spliced(genuine: str, forged: str) -> str:
    """The forged cookie's payload under the genuine cookie's timestamp and signature."""
    separator = ":" if genuine.count(":") >= 2 else "."
    payload = forged.rsplit(separator, 2)[0]
    return separator.join([payload, *genuine.rsplit(separator, 2)[1:]])


COOKIE_ALPHABET = string.ascii_letters + string.digits + "-_.:="


def test_forged_session_cookies_sign_nobody_in(target: Target) -> None:
    name = target.session_cookie
    genuine = target.login("uma")[0][name]
    as_ada = {"username": "ada"}

    # Control: signed with the app's real secret, the forger's cookie is ada's, so the forms below are right.
    with_the_real_key = target.sign(as_ada, target.secret)
    assert target.whoami({name: with_the_real_key}) == ("ada", "admin")
    assert target.send("GET", "/admin", cookies={name: with_the_real_key}).status_code == 200
    # A role next to the username, in a genuinely signed session, is never read: the role is looked up.
    assert target.whoami({name: target.sign({"username": "uma", "role": "admin"}, target.secret)}) == ("uma", "user")

    with_a_guessed_key = target.sign(as_ada, "guessed-" + target.secret)
    forgeries = {
        "signed with a guessed key": with_a_guessed_key,
        "ada's payload under uma's signature": spliced(genuine, with_a_guessed_key),
        "unsigned": with_a_guessed_key.rsplit(":" if ":" in with_a_guessed_key else ".", 2)[0],
        "empty": "",
    }
    for what, cookie in forgeries.items():
        assert target.whoami({name: cookie}) == (None, None), what
        for method, path in (("GET", "/admin"), ("POST", "/api/chat")):
            response = target.send(method, path, cookies={name: cookie}, json={**PROMPT, "model": OPUS})
            assert response.status_code == 401, (what, path, response.text)

    @given(
        index=st.integers(0, len(genuine) - 1),
        edit=st.sampled_from(["replace", "delete", "insert"]),
        char=st.sampled_from(COOKIE_ALPHABET),
    )
    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    def tampered(index: int, edit: str, char: str) -> None:
        if edit == "replace":
            cookie = genuine[:index] + char + genuine[index + 1 :]
        elif edit == "delete":
            cookie = genuine[:index] + genuine[index + 1 :]
        else:
            cookie = genuine[:index] + char + genuine[index:]
        assume(cookie != genuine)
        # A bit-flip the signature scheme tolerates (base64 padding bits) may still be uma; never anyone else.
        assert target.whoami({name: cookie}) in {(None, None), ("uma", "user")}
        assert target.send("GET", "/admin", cookies={name: cookie}).status_code in {401, 403}

    tampered()
    assert target.whoami({name: genuine}) == ("uma", "user")
    assert target.fake.requests == []


# -- forged paths: dot segments against path rules (the WSGI middleware's and Flask's) --------------------

SEGMENTS = ("admin", "x", "", ".", "..", "%2e", "%2e%2e", "%2E%2e", ".%2e", "%2e.", "admin%2f..")
PATHS = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=5).map(lambda segments: "/" + "/".join(segments))


def _served_view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A router by first path segment, as sent: ``/admin/..`` is an admin page here, as in werkzeug's router."""
    view = "admin" if environ["PATH_INFO"].split("/")[1:2] == ["admin"] else "other"
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"view": view}).encode()]


def _rule_guarded_flask(rbac: RBAC) -> Flask:
    app = Flask("rules")
    app.testing = True
    ClaudeRBAC(app, rbac=rbac, principal_loader=lambda: UMA, rules={"/admin/*": "admin"})
    app.add_url_rule("/admin", "admin", lambda: {"view": "admin"})
    app.add_url_rule("/admin/<path:rest>", "admin_rest", lambda rest: {"view": "admin"})
    app.add_url_rule("/", "home", lambda: {"view": "other"})
    app.add_url_rule("/<path:rest>", "other", lambda rest: {"view": "other"})
    return app


@pytest.mark.parametrize("name", ["wsgi", "flask"])
def test_dot_segments_in_the_path_never_slip_past_a_path_rule(name: str, fake_claude: FakeClaude) -> None:
    rbac = make_rbac(fake_claude)
    if name == "wsgi":
        app: Any = RBACMiddleware(_served_view, rbac=rbac, principal_loader=lambda e: UMA, rules={"/admin/*": "admin"})
    else:
        app = _rule_guarded_flask(rbac)
    served: set[str] = set()

    @given(path=PATHS)
    @settings(max_examples=60, deadline=None, database=None)
    def requested(path: str) -> None:
        # Absolute, so "//admin" is a path; httpx resolves literal dot segments, percent-encoded ones reach the app.
        response = http.get(f"http://testserver{path}")
        if response.status_code == 403:
            assert error_of(response)["error_code"] == "role_insufficient"
            return
        assert response.status_code in (200, 308, 404), (path, response.status_code)
        view = response.json()["view"] if response.status_code == 200 else "none"
        served.add(view)
        assert view != "admin", f"{path!r} reached the admin view as a user"

    try:
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://testserver") as http:
            requested()
            for path in ("/admin/%2e%2e", "/admin/x/%2e%2e/%2e%2e", "/admin/.%2e"):
                assert http.get(path).status_code == 403, path
            assert http.get("/x").json() == {"view": "other"}
    finally:
        rbac.close()
    assert fake_claude.requests == []
