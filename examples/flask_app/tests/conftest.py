"""The example app, configured the way its users configure it: through the environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from claude_rbac.integrations.flask import current_rbac
from claude_rbac.testing import FakeClaude
from examples.flask_app import create_app


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
