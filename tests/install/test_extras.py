"""Each extra alone, in a fresh venv: what it promises imports, and the README's section for it runs.

The framework venvs hold exactly what their README section's ``pip install`` line installs; the app is
the section's code saved as ``app.py`` and served by the command the section names, called over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from claude_rbac.testing import FakeClaude

from . import readme
from .served import Browser, serving
from .venvs import VenvPool

pytestmark = [pytest.mark.install, pytest.mark.slow]

KEY = "sk-ant-api03-install-matrix-0000000000000000000000000000-TEST"
PROMISED = {
    "flask": ["claude_rbac.integrations.flask", "claude_rbac.integrations.wsgi"],
    "fastapi": [
        "claude_rbac.integrations.fastapi",
        "claude_rbac.integrations.starlette",
        "claude_rbac.integrations.asgi",
    ],
    "starlette": ["claude_rbac.integrations.starlette", "claude_rbac.integrations.asgi"],
}


def save_app(title: str, directory: Path) -> Path:
    (code,) = readme.blocks(title, "python")
    (directory / "app.py").write_text(code, encoding="utf-8")
    return directory


@pytest.mark.parametrize("extra", list(PROMISED))
def test_the_extra_imports_its_integration(extra: str, venvs: VenvPool, tmp_path: Path) -> None:
    venv = venvs.get(extra)
    venv.python_code("; ".join(f"import {module}" for module in PROMISED[extra]), cwd=tmp_path)


def test_the_flask_section_runs(venvs: VenvPool, fake_claude: FakeClaude, tmp_path: Path) -> None:
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake_claude.url}
    app = save_app("Flask", tmp_path)
    with serving(venvs.get("flask"), readme.run_command("Flask"), cwd=app, env=env) as served:
        url = served.url
        assert Browser(url).post("/chat", json_body={"prompt": "hi"})[0] == 401
        uma = Browser(url)
        assert uma.post("/login", form={"username": "uma"}) == (200, {"user": "uma", "role": "user"})
        status, answer = uma.post("/chat", json_body={"prompt": "hi"})
        assert status == 200
        assert answer["text"]
        status, denied = uma.post("/chat", json_body={"prompt": "hi", "model": "claude-opus-4-7"})
        assert (status, denied["error"]["error_code"]) == (403, "model_not_allowed")
    (sent,) = fake_claude.calls()
    assert (sent.json["model"], sent.json["max_tokens"]) == ("claude-haiku-4-5", 512)


@pytest.mark.parametrize(("extra", "title"), [("fastapi", "FastAPI"), ("starlette", "Starlette")])
def test_the_asgi_sections_run(
    extra: str, title: str, venvs: VenvPool, fake_claude: FakeClaude, tmp_path: Path
) -> None:
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake_claude.url}
    app = save_app(title, tmp_path)

    def summarize(browser: Browser) -> tuple[int, object]:
        if extra == "fastapi":  # its `text: str` parameter is a query parameter
            return browser.post("/summarize?text=Claude+governs")
        return browser.post("/summarize", json_body={"text": "Claude governs"})

    with serving(venvs.get(extra), readme.run_command(title), cwd=app, env=env) as served:
        url = served.url
        assert summarize(Browser(url))[0] == 401
        uma, paul = Browser(url), Browser(url)
        assert uma.post("/login/uma")[0] == 200
        assert summarize(uma)[0] == 403
        assert paul.post("/login/paul")[0] == 200
        status, answer = summarize(paul)
        assert status == 200
        assert answer["summary"]  # type: ignore[index]
    (sent,) = fake_claude.calls()
    assert (sent.json["model"], sent.json["max_tokens"]) == ("claude-sonnet-4-6", 300)


def test_the_django_section_runs(venvs: VenvPool, fake_claude: FakeClaude, tmp_path: Path) -> None:
    for code in readme.blocks("Django", "python") + readme.blocks("Django", "toml"):
        name = code.splitlines()[0].removeprefix("# ").split()[0]  # "# settings.py", "# rbac.toml", "# views.py ..."
        (tmp_path / name).write_text(code, encoding="utf-8")
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake_claude.url}
    script = Path(__file__).with_name("django_project.py")
    seen = json.loads(venvs.get("django").run(["python", str(script), str(tmp_path)], cwd=tmp_path, env=env).stdout)
    assert seen["checks"] == []
    assert seen["anonymous chat"] == 401
    assert seen["uma chat"]["text"]
    assert seen["uma usage"] == 403
    assert seen["ada usage"]["rate_limits"][0]["limit"] == 60  # the README's admin inherits power's rpm
    assert seen["ada long"] == 200
    assert [(call.json["model"], call.json["max_tokens"]) for call in fake_claude.calls()] == [
        ("claude-haiku-4-5", 256),
        ("claude-opus-4-7", 2048),
    ]


REDIS_SCRIPT = """
import asyncio, sys
import redis
from claude_rbac import RBAC, Policy, Principal, RateLimited

policy = Policy.from_dict({"version": 1, "roles": {"user": {"models": ["claude-haiku-*"], "max_tokens": 64, "rpm": 1}}})
rbac = RBAC(policy, storage=sys.argv[1], key_prefix=sys.argv[2])
call = dict(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])

def twice(claude):
    claude.messages.create(**call)
    try:
        claude.messages.create(**call)
    except RateLimited as limited:
        return limited.status_code
    return 200

async def atwice(claude):
    await claude.messages.create(**call)
    try:
        await claude.messages.create(**call)
    except RateLimited as limited:
        return limited.status_code
    finally:
        await rbac.aclose()
    return 200

print(twice(rbac.client(Principal("uma", "user"))), asyncio.run(atwice(rbac.async_client(Principal("ulf", "user")))))
rbac.close()
"""


def test_a_redis_storage_governs_calls(
    venvs: VenvPool, fake_claude: FakeClaude, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    storage = redis_url if urlsplit(redis_url).path.strip("/") else f"{redis_url.rstrip('/')}/0"
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake_claude.url}
    out = venvs.get("redis").run(["python", "-c", REDIS_SCRIPT, storage, key_prefix], cwd=tmp_path, env=env).stdout
    assert out.split() == ["429", "429"]  # the second call of each client is over rpm=1
    assert fake_claude.count() == 2
    assert redis.Redis.from_url(storage).keys(f"*{key_prefix}*")  # counted in Redis, not in memory


def test_a_yaml_policy_loads(venvs: VenvPool, tmp_path: Path) -> None:
    (tmp_path / "rbac.yaml").write_text(
        "version: 1\nroles:\n  user:\n    models: [claude-haiku-*]\n    max_tokens: 512\n"
        "  power:\n    inherits: user\n    models: [claude-sonnet-*]\n"
    )
    yaml = venvs.get("yaml")
    assert "OK, 2 role(s)" in yaml.run(["claude-rbac", "check", "rbac.yaml"], cwd=tmp_path).stdout
    code = "from claude_rbac import Policy; print(Policy.from_file('rbac.yaml').roles['power'].max_tokens)"
    assert yaml.python_code(code, cwd=tmp_path).stdout.strip() == "512"
