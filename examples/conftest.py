"""Fixtures the example apps' tests share: the offline environment and a real Redis under a prefix of their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.redis import delete_prefix, shared_redis, unique_prefix

from claude_rbac.testing import FakeClaude
from examples.processes import ENV_KEYS


@pytest.fixture
def offline_env(fake_claude: FakeClaude, monkeypatch: pytest.MonkeyPatch) -> FakeClaude:
    """No API key, ANTHROPIC_BASE_URL at the test's FakeClaude: the example's own backend selection."""
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_claude.url)
    return fake_claude


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
