"""The default principal loaders take the role from the server, never from the client's cookie.

A signed session is the client's to keep: a demoted or signed-out admin who replays an old cookie that
says ``role: admin`` must not be an admin again (a Flask session cookie lives 31 days by default). The
session may say who the user is; what they may do comes from the server: Flask-Login's user, Starlette's
``request.user``, or the ``role_loader(user_id)`` the app passes. Without one of those, no role (403).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask, session
from flask_login import LoginManager, UserMixin, login_user
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from claude_rbac import RBAC
from claude_rbac.integrations import flask as flask_rbac
from claude_rbac.integrations import starlette as starlette_rbac
from claude_rbac.testing import FakeClaude

from ._support import HAIKU, MIRROR_SECRET, make_rbac, starlette_sign

DIRECTORY: dict[str, str] = {}
"""The app's user store, on the server: user id -> role."""


@pytest.fixture(autouse=True)
def directory() -> Iterator[dict[str, str]]:
    DIRECTORY.clear()
    DIRECTORY.update({"ada": "admin", "uma": "user"})
    yield DIRECTORY
    DIRECTORY.clear()


def directory_role(user_id: str) -> str | None:
    return DIRECTORY.get(user_id)


@pytest.fixture
def rbac(fake_claude: FakeClaude) -> Iterator[RBAC]:
    with make_rbac(fake_claude) as governed:
        yield governed


# -- Flask ------------------------------------------------------------------------------------------


def flask_app(rbac: RBAC, config: dict[str, Any] | None = None, **extension: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=MIRROR_SECRET, TESTING=True, **(config or {}))
    flask_rbac.ClaudeRBAC(app, rbac=rbac, **extension)

    @app.get("/admin")
    @flask_rbac.requires_role("admin")
    def admin() -> str:
        return "admin page"

    @app.post("/chat")
    @flask_rbac.requires_role("user")
    def chat() -> dict[str, str]:
        claude = flask_rbac.current_claude()
        message = claude.messages.create(model=HAIKU, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        return {"model": message.model}

    @app.get("/whoami")
    def whoami() -> dict[str, str | None]:
        principal = flask_rbac.current_principal()
        return {"user": principal.id if principal else None, "role": principal.role if principal else None}

    return app


def replayed_flask_client(app: Flask, **cookie: str) -> Any:
    """A client whose signed session holds ``cookie``: what the app wrote once, replayed unchanged."""
    client = app.test_client()
    with client.session_transaction() as sess:
        sess.update(cookie)
    return client


def test_flask_default_loader_ignores_a_role_in_the_session(rbac: RBAC, fake_claude: FakeClaude) -> None:
    client = replayed_flask_client(flask_app(rbac), user_id="ada", role="admin")
    assert client.get("/whoami").get_json() == {"user": "ada", "role": None}
    denied = client.get("/admin")
    assert denied.status_code == 403
    assert denied.get_json()["error"]["error_code"] == "role_insufficient"
    assert client.post("/chat").status_code == 403
    assert fake_claude.count() == 0


@pytest.mark.parametrize(
    "configure",
    [
        pytest.param({"role_loader": directory_role}, id="argument"),
        pytest.param({"CLAUDE_RBAC_ROLE_LOADER": f"{__name__}:directory_role"}, id="config-key"),
    ],
)
def test_flask_default_loader_asks_the_role_loader_on_every_request(
    rbac: RBAC, fake_claude: FakeClaude, configure: dict[str, Any]
) -> None:
    config = {key: value for key, value in configure.items() if key.startswith("CLAUDE_RBAC_")}
    arguments = {key: value for key, value in configure.items() if key not in config}
    client = replayed_flask_client(flask_app(rbac, config, **arguments), user_id="ada", role="admin")
    assert client.get("/admin").status_code == 200
    DIRECTORY["ada"] = "user"  # demoted: the cookie she holds is unchanged
    assert client.get("/admin").status_code == 403
    assert client.post("/chat").status_code == 200
    del DIRECTORY["ada"]  # removed
    assert client.get("/whoami").get_json() == {"user": "ada", "role": None}
    assert client.post("/chat").status_code == 403
    assert fake_claude.count() == 1


def test_flask_session_role_key_fails_at_init_app_and_says_what_to_do(rbac: RBAC) -> None:
    app = Flask(__name__)
    app.config.update(CLAUDE_RBAC_SESSION_ROLE_KEY="role")
    with pytest.raises(ValueError, match=r"CLAUDE_RBAC_SESSION_ROLE_KEY.*role_loader"):
        flask_rbac.ClaudeRBAC(app, rbac=rbac)


class DirectoryUser(UserMixin):  # type: ignore[misc]
    def __init__(self, user_id: str) -> None:
        self.id = user_id

    @property
    def role(self) -> str | None:
        return DIRECTORY.get(self.id)


def test_flask_login_user_is_server_side_and_a_role_loader_wins_over_it(rbac: RBAC) -> None:
    app = flask_app(rbac, role_loader=lambda user_id: "user" if user_id in DIRECTORY else None)
    LoginManager(app).user_loader(lambda user_id: DirectoryUser(user_id) if user_id in DIRECTORY else None)

    @app.post("/login/<name>")
    def login(name: str) -> str:
        login_user(DirectoryUser(name))
        return "ok"

    client = app.test_client()
    client.post("/login/ada")
    assert client.get("/whoami").get_json() == {"user": "ada", "role": "user"}
    assert client.get("/admin").status_code == 403


def test_flask_login_user_role_follows_the_store(rbac: RBAC) -> None:
    app = flask_app(rbac)
    LoginManager(app).user_loader(lambda user_id: DirectoryUser(user_id) if user_id in DIRECTORY else None)

    @app.post("/login/<name>")
    def login(name: str) -> str:
        login_user(DirectoryUser(name))
        session["role"] = "admin"  # a stray role in the session changes nothing
        return "ok"

    client = app.test_client()
    client.post("/login/ada")
    assert client.get("/admin").status_code == 200
    DIRECTORY["ada"] = "user"
    assert client.get("/admin").status_code == 403


# -- Starlette ------------------------------------------------------------------------------------------


async def whoami(request: Request) -> Response:
    principal = starlette_rbac.get_principal(request)
    return JSONResponse({"user": principal.id if principal else None, "role": principal.role if principal else None})


@starlette_rbac.requires_role("admin")
async def admin(request: Request) -> Response:
    return PlainTextResponse("admin page")


def starlette_app(rbac: RBAC, **middleware: Any) -> Starlette:
    return Starlette(
        routes=[Route("/whoami", whoami), Route("/admin", admin)],
        middleware=[
            Middleware(SessionMiddleware, secret_key=MIRROR_SECRET),
            Middleware(starlette_rbac.RBACMiddleware, rbac=rbac, **middleware),
        ],
    )


def replayed_starlette_client(client: TestClient, **cookie: str) -> TestClient:
    client.cookies.set("session", starlette_sign(cookie, MIRROR_SECRET))
    return client


def test_starlette_default_loader_ignores_a_role_in_the_session(rbac: RBAC) -> None:
    with TestClient(starlette_app(rbac)) as client:
        replayed_starlette_client(client, user_id="ada", role="admin")
        assert client.get("/whoami").json() == {"user": "ada", "role": None}
        denied = client.get("/admin")
    assert denied.status_code == 403
    assert denied.json()["error"]["error_code"] == "role_insufficient"


async def async_directory_role(user_id: str) -> str | None:
    return DIRECTORY.get(user_id)


@pytest.mark.parametrize("role_loader", [directory_role, async_directory_role], ids=["sync", "async"])
def test_starlette_default_loader_asks_the_role_loader(rbac: RBAC, role_loader: Any) -> None:
    with TestClient(starlette_app(rbac, role_loader=role_loader)) as client:
        replayed_starlette_client(client, user_id="ada", role="admin")
        assert client.get("/admin").status_code == 200
        DIRECTORY["ada"] = "user"
        assert client.get("/admin").status_code == 403
        assert client.get("/whoami").json() == {"user": "ada", "role": "user"}
        del DIRECTORY["ada"]
        assert client.get("/whoami").json() == {"user": "ada", "role": None}


def test_starlette_session_keys_fails_and_says_what_to_do(rbac: RBAC) -> None:
    with pytest.raises(TypeError, match=r"session_keys.*role_loader"):
        starlette_rbac.RBACMiddleware(whoami, rbac=rbac, session_keys=("uid", "level"))
    with pytest.raises(TypeError, match=r"session_keys.*role_loader"):
        starlette_rbac.session_or_user_loader(session_keys=("uid", "level"))  # type: ignore[call-arg]


class DirectoryBackend(AuthenticationBackend):
    """Authentication the app runs on the server for every request: its user carries the role it looked up."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        name = conn.session.get("user_id")
        if name not in DIRECTORY:
            return None
        user = SimpleUser(name)
        user.role = DIRECTORY[name]  # type: ignore[attr-defined]
        return AuthCredentials(["authenticated"]), user


def test_starlette_request_user_is_server_side_and_a_role_loader_wins_over_it(rbac: RBAC) -> None:
    def app(**middleware: Any) -> Starlette:
        return Starlette(
            routes=[Route("/whoami", whoami), Route("/admin", admin)],
            middleware=[
                Middleware(SessionMiddleware, secret_key=MIRROR_SECRET),
                Middleware(AuthenticationMiddleware, backend=DirectoryBackend()),
                Middleware(starlette_rbac.RBACMiddleware, rbac=rbac, **middleware),
            ],
        )

    with TestClient(app()) as client:
        replayed_starlette_client(client, user_id="ada", role="viewer")
        assert client.get("/admin").status_code == 200
        DIRECTORY["ada"] = "user"
        assert client.get("/admin").status_code == 403
    with TestClient(app(role_loader=lambda user_id: "viewer")) as client:
        replayed_starlette_client(client, user_id="uma")
        assert client.get("/whoami").json() == {"user": "uma", "role": "viewer"}


# -- the README's Starlette example (docs/starlette.md holds the same block) --------------------------


@pytest.fixture
def readme_starlette(fake_claude: FakeClaude, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ModuleType]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-docs-example-0000")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_claude.url)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "starlette.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", doc, re.S)
    assert match is not None
    path = tmp_path / "readme_starlette_example.py"
    path.write_text(match.group(1), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(path.stem, None)


def test_the_readme_starlette_example_forgets_a_demoted_role(readme_starlette: ModuleType) -> None:
    text = {"text": "RBAC in front of Claude."}
    with TestClient(readme_starlette.app) as client:
        client.post("/login/paul")
        before = client.post("/summarize", json=text)
        readme_starlette.USERS["paul"] = "user"  # demoted; his browser keeps the same cookie
        demoted = client.post("/summarize", json=text)
        del readme_starlette.USERS["paul"]  # removed
        removed = client.post("/summarize", json=text)
        client.portal.call(readme_starlette.rbac.aclose)  # type: ignore[union-attr]
    assert before.status_code == 200
    assert demoted.status_code == 403
    assert removed.status_code == 403
