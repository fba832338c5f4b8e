"""The demo app, configured the way its users configure it: through the environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from claude_rbac.testing import FakeClaude
from examples.fastapi_app import create_app


@pytest.fixture
def client(offline_env: FakeClaude) -> Iterator[TestClient]:
    """create_app() as uvicorn would build it; ``with`` runs the lifespan, which closes the pools at the end."""
    with TestClient(create_app()) as client:
        yield client


@pytest.fixture
def login(client: TestClient) -> Callable[[str], TestClient]:
    def signed_in(username: str) -> TestClient:
        response = client.post("/login", json={"username": username})
        assert response.status_code == 200, response.text
        return client

    return signed_in
