"""The example app, configured the way its users configure it: through the environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from tests.support.redis import delete_prefix, shared_redis, unique_prefix

from claude_rbac.integrations.flask import current_rbac
from claude_rbac.testing import FakeClaude
from examples.flask_app import create_app

ENV_KEYS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_RBAC_POLICY",
    "CLAUDE_RBAC_STORAGE",
    "CLAUDE_RBAC_KEY_PREFIX",
)


@pytest.fixture
def offline_env(fake_claude: FakeClaude, monkeypatch: pytest.MonkeyPatch) -> FakeClaude:
    """No API key, ANTHROPIC_BASE_URL at the test's FakeClaude: the example's own backend selection."""
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_claude.url)
    return fake_claude


@pytest.fixture
def make_app(offline_env: FakeClaude) -> Iterator[Callable[[], Flask]]:
    """create_app(), as a WSGI server would call it; the apps' connection pools are closed afterwards."""
    apps: list[Flask] = []

    def make() -> Flask:
        app = create_app()
        app.testing = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        close_app(app)


def close_app(app: Flask) -> None:
    with app.app_context():
        current_rbac().close()


@pytest.fixture
def app(make_app: Callable[[], Flask]) -> Flask:
    return make_app()


@pytest.fixture
def login(app: Flask) -> Callable[[str | None], FlaskClient]:
    def signed_in(username: str | None) -> FlaskClient:
        client = app.test_client()
        if username is not None:
            response = client.post("/login", json={"username": username})
            assert response.status_code == 200, response.get_data(as_text=True)
        return client

    return signed_in


@pytest.fixture(scope="session")
def example_redis() -> Iterator[str]:
    with shared_redis() as url:
        yield url


@pytest.fixture
def redis_env(offline_env: FakeClaude, example_redis: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """CLAUDE_RBAC_STORAGE at a real Redis, under a key prefix of this test's own; yields the prefix."""
    if not example_redis:
        pytest.skip("no Redis available (CI=true makes this a failure)")
    prefix = unique_prefix()
    monkeypatch.setenv("CLAUDE_RBAC_STORAGE", example_redis)
    monkeypatch.setenv("CLAUDE_RBAC_KEY_PREFIX", prefix)
    yield prefix
    delete_prefix(example_redis, prefix)
