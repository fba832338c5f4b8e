from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis import delete_prefix, shared_redis, unique_prefix


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    with shared_redis() as url:
        yield url


@pytest.fixture
def redis_url(redis_server: str) -> str:
    if not redis_server:
        pytest.skip("no Redis at 127.0.0.1:6379 and redis-server cannot be started (CI=true makes this a failure)")
    return redis_server


@pytest.fixture
def key_prefix(redis_server: str) -> Iterator[str]:
    """A key prefix of the test's own, whose Redis keys are deleted afterwards."""
    prefix = unique_prefix()
    yield prefix
    if redis_server:
        delete_prefix(redis_server, prefix)


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest, redis_server: str) -> str:
    """A limits storage URI: each test that takes it runs on memory and on the real Redis."""
    if request.param == "memory":
        return "memory://"
    if not redis_server:
        pytest.skip("no Redis available")
    return redis_server
