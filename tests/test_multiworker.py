"""Exact limits across processes: the example apps under 4-worker servers, sharing the Redis at 127.0.0.1:6379.

200 concurrent requests go to a route whose role allows 20 a minute (or a token bound); exactly what
the policy allows reaches FakeClaude, and every other request gets a 429 with Retry-After. Bounded in
requests and seconds; the servers, their workers and the test's Redis keys are gone afterwards.
"""

from __future__ import annotations

import asyncio
import math
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from claude_rbac.policy import estimate_input_tokens
from claude_rbac.testing import FakeClaude
from tests.support import servers

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("redis-server") is None and not Path(servers.BIN / "gunicorn").exists(),
        reason="needs Redis and the servers",
    ),
]

APPS: dict[str, Callable[[dict[str, str]], AbstractContextManager[str]]] = {
    "flask+gunicorn": lambda env: servers.gunicorn("examples.flask_app:create_app()", env),
    "fastapi+uvicorn": lambda env: servers.uvicorn("examples.fastapi_app:app", env),
}
CONCURRENT = 200


def policy(tmp_path: Path, user: str) -> str:
    """The example apps' four roles, with the user role's limits under test."""
    path = tmp_path / "rbac.toml"
    path.write_text(
        'version = 1\n[roles.viewer]\nallowed = false\n[roles.user]\ninherits = "viewer"\nmodels = ["claude-haiku-*"]\n'
        f'{user}\n[roles.power]\ninherits = "user"\nmodels = ["claude-opus-*"]\n'
        '[roles.admin]\ninherits = "power"\n'
    )
    return str(path)


@pytest.fixture(params=list(APPS))
def app_name(request: pytest.FixtureRequest) -> str:
    if request.param.startswith("fastapi"):
        pytest.importorskip("examples.fastapi_app")
    return str(request.param)


@pytest.fixture
def fake() -> Iterator[FakeClaude]:
    with FakeClaude(delay=0.01) as running:
        yield running


def run_app(
    app_name: str, fake: FakeClaude, redis_url: str, key_prefix: str, policy_file: str
) -> AbstractContextManager[str]:
    env = {
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": "",
        # Four workers, the load generator and FakeClaude share two cores here: a starved event loop fires a
        # socket timeout late, so these servers get 1 s instead of the default 0.25 s (set in the URI).
        "CLAUDE_RBAC_STORAGE": f"{redis_url}/0?socket_timeout=1&socket_connect_timeout=1",
        "CLAUDE_RBAC_KEY_PREFIX": key_prefix,
        "CLAUDE_RBAC_POLICY": policy_file,
    }
    return APPS[app_name](env)


async def burst(url: str, body: dict[str, Any], n: int = CONCURRENT) -> list[httpx.Response]:
    """Sign in as uma, then send n chat requests at once."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        login = await client.post("/login", json={"username": "uma"})
        assert login.status_code in (200, 302, 303)
        await client.get("/api/me")
        return list(await asyncio.gather(*(client.post("/api/chat", json=body) for _ in range(n))))


def check_refusals(responses: list[httpx.Response], reason: str) -> None:
    for response in responses:
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["error"]["error_code"] == reason


def test_rpm_is_exact_across_workers(
    app_name: str, fake: FakeClaude, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    with run_app(app_name, fake, redis_url, key_prefix, policy(tmp_path, "rpm = 20\nmax_tokens = 50")) as url:
        responses = asyncio.run(burst(url, {"prompt": "hi", "max_tokens": 20}))
    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) == 20
    assert fake.count() == 20
    check_refusals([r for r in responses if r.status_code != 200], "rate_limited")


def usage_of(request_json: dict[str, Any], fake: FakeClaude) -> int:
    return fake.input_tokens(request_json) + min(request_json["max_tokens"], fake.output_tokens)


def reserved(prompt: str, max_tokens: int) -> int:
    """What one call reserves: the (high) input estimate and its max_tokens."""
    return estimate_input_tokens({"messages": [{"role": "user", "content": prompt}]}) + max_tokens


def test_tpm_is_bounded_across_workers(
    app_name: str, fake: FakeClaude, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    tpm = 600
    with run_app(app_name, fake, redis_url, key_prefix, policy(tmp_path, f"tpm = {tpm}\nmax_tokens = 40")) as url:
        responses = asyncio.run(burst(url, {"prompt": "hi", "max_tokens": 40}))
    used = sum(usage_of(r.json, fake) for r in fake.calls())
    admitted = [r for r in responses if r.status_code == 200]
    assert fake.count() == len(admitted)
    # Each call reserves 17 (estimate) + 40 and uses 1 + 10; reservations bound the burst. At least what
    # fits at once is admitted (more when a worker's next call carries the tokens an earlier one gave back).
    assert used <= tpm
    assert len(admitted) >= math.floor(tpm / reserved("hi", 40))
    check_refusals([r for r in responses if r.status_code != 200], "rate_limited")


def test_budget_is_bounded_across_workers(
    app_name: str, fake: FakeClaude, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    budget = 400
    with run_app(
        app_name, fake, redis_url, key_prefix, policy(tmp_path, f"budget = {{ day = {budget} }}\nmax_tokens = 40")
    ) as url:
        responses = asyncio.run(burst(url, {"prompt": "hi", "max_tokens": 40}))
    used = sum(usage_of(r.json, fake) for r in fake.calls())
    admitted = [r for r in responses if r.status_code == 200]
    assert fake.count() == len(admitted)
    assert used <= budget
    assert len(admitted) >= math.floor(budget / reserved("hi", 40))
    check_refusals([r for r in responses if r.status_code != 200], "token_budget_exceeded")
