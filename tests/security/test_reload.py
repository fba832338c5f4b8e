"""A reload puts the whole new policy in force, at once, for every client already handed out (issue #14, items 3, 4).

Item 3: every setting of a policy file takes effect on ``reload_policy()``: roles, the top-level ``mode``
(shadow to enforce must start enforcing), a role's ``mode``, ``on_excess``, workspaces and their keys,
``default_workspace``, ``allowed_org_ids`` and ``revoked``. What needs a restart is what ``RBAC(...)``
was given (its ``mode=`` and ``allowed_org_ids=`` win over the policy's, by design; storage, key prefix,
``api_key=``/``base_url=``/``service=``, ``revoked=``).

Item 4: reloads race with requests. Four threads hammer a ``power`` route guard and governed opus calls
through clients obtained before the reload (held, as a websocket session or a background job would)
while the main thread reloads a policy that demotes the role: once ``reload_policy()`` has returned, no
decision that starts uses the old policy. A role the reload adds gets its rate limit on a client built
before the role existed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import pytest

from claude_rbac import RBAC, AccessDenied, Principal, RateLimited
from claude_rbac.policy import fingerprint
from claude_rbac.testing import FakeClaude

PROD_KEY = "sk-ant-api03-reload-tests-prod-000000000000000000000000000-PROD"
DEV_KEY = "sk-ant-api03-reload-tests-dev-0000000000000000000000000000-DEVK"
HAIKU, OPUS = "claude-haiku-4-5", "claude-opus-4-7"
MESSAGES = [{"role": "user", "content": "hi"}]
ORG = "11111111-1111-4111-8111-111111111111"
UMA, LEO = Principal("uma", "user"), Principal("leo", "lead")
USER = {"models": ["claude-haiku-*"], "max_tokens": 512}


def policy(**top: Any) -> dict[str, Any]:
    """Workspaces prod and dev, default prod; a user role; anything in ``top`` replaces or adds a top-level key."""
    return {
        "version": 1,
        "workspaces": {"prod": {"api_key": {"env": "RELOAD_PROD_KEY"}}, "dev": {"api_key": {"env": "RELOAD_DEV_KEY"}}},
        "default_workspace": "prod",
        "roles": {"user": USER},
        **top,
    }


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data))


def haiku(client: anthropic.Anthropic, max_tokens: int = 10) -> None:
    client.messages.create(model=HAIKU, max_tokens=max_tokens, messages=MESSAGES)


def opus(client: anthropic.Anthropic) -> None:
    client.messages.create(model=OPUS, max_tokens=10, messages=MESSAGES)


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELOAD_PROD_KEY", PROD_KEY)
    monkeypatch.setenv("RELOAD_DEV_KEY", DEV_KEY)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    return tmp_path / "rbac.json"


@dataclass(frozen=True)
class Setting:
    before: dict[str, Any]
    after: dict[str, Any]
    check_before: Callable[[anthropic.Anthropic, FakeClaude], object]
    check_after: Callable[[anthropic.Anthropic, FakeClaude], object]


def refused(reason: str, call: Callable[[], object]) -> None:
    with pytest.raises(AccessDenied) as info:
        call()
    assert info.value.reason == reason


def _sent(fake: FakeClaude, **expected: Any) -> None:
    request = fake.requests[-1]
    for name, value in expected.items():
        actual = {"key": request.api_key, "org": request.headers.get("anthropic-allowed-org-ids")}.get(name)
        assert actual == value, (name, actual, value)


SETTINGS = {
    "top-level mode, shadow to enforce": Setting(
        policy(mode="shadow"),
        policy(mode="enforce"),
        lambda client, fake: opus(client),
        lambda client, fake: refused("model_not_allowed", lambda: opus(client)),
    ),
    "a role's mode": Setting(
        policy(),
        policy(roles={"user": {**USER, "mode": "shadow"}}),
        lambda client, fake: refused("model_not_allowed", lambda: opus(client)),
        lambda client, fake: opus(client),
    ),
    "roles": Setting(
        policy(),
        policy(roles={"user": {**USER, "allowed": False}}),
        lambda client, fake: haiku(client),
        lambda client, fake: refused("api_access_not_allowed", lambda: haiku(client)),
    ),
    "on_excess": Setting(
        policy(),
        policy(on_excess="reject"),
        lambda client, fake: haiku(client, 4000),
        lambda client, fake: refused("max_tokens_exceeded", lambda: haiku(client, 4000)),
    ),
    "default_workspace": Setting(
        policy(),
        policy(default_workspace="dev"),
        lambda client, fake: (haiku(client), _sent(fake, key=PROD_KEY)),
        lambda client, fake: (haiku(client), _sent(fake, key=DEV_KEY)),
    ),
    "a workspace's key source": Setting(
        policy(),
        policy(workspaces={"prod": {"api_key": {"env": "RELOAD_DEV_KEY"}}}),
        lambda client, fake: (haiku(client), _sent(fake, key=PROD_KEY)),
        lambda client, fake: (haiku(client), _sent(fake, key=DEV_KEY)),
    ),
    "allowed_org_ids": Setting(
        policy(),
        policy(allowed_org_ids=[ORG]),
        lambda client, fake: (haiku(client), _sent(fake, org=None)),
        lambda client, fake: (haiku(client), _sent(fake, org=ORG)),
    ),
    "revoked": Setting(
        policy(),
        policy(revoked=[fingerprint(PROD_KEY)]),
        lambda client, fake: haiku(client),
        lambda client, fake: refused("key_revoked", lambda: haiku(client)),
    ),
}


@pytest.mark.usefixtures("keys")
@pytest.mark.parametrize("setting", SETTINGS.values(), ids=SETTINGS.keys())
def test_every_setting_takes_effect_on_reload(policy_file: Path, fake_claude: FakeClaude, setting: Setting) -> None:
    write(policy_file, setting.before)
    with RBAC(policy_file, base_url=fake_claude.url) as rbac:
        held = rbac.client(UMA)  # handed out before the reload: it must follow the new policy
        setting.check_before(held, fake_claude)
        write(policy_file, setting.after)
        rbac.reload_policy()
        setting.check_after(held, fake_claude)
        setting.check_after(rbac.client(UMA), fake_claude)  # and so must a client handed out after it


@pytest.mark.usefixtures("keys")
def test_the_mode_in_force_is_the_reloaded_one(policy_file: Path, fake_claude: FakeClaude) -> None:
    write(policy_file, policy(mode="shadow"))
    with RBAC(policy_file, base_url=fake_claude.url) as rbac:
        assert rbac.mode == "shadow"
        write(policy_file, policy())
        rbac.reload_policy()
        assert rbac.mode == "enforce"


@pytest.mark.usefixtures("keys")
def test_what_rbac_was_given_wins_until_a_restart(policy_file: Path, fake_claude: FakeClaude) -> None:
    """``RBAC(mode=..., allowed_org_ids=...)`` override the policy's, before and after any reload."""
    write(policy_file, policy(mode="enforce"))
    with RBAC(policy_file, base_url=fake_claude.url, mode="shadow", allowed_org_ids=[ORG]) as rbac:
        write(policy_file, policy(mode="enforce", allowed_org_ids=["22222222-2222-4222-8222-222222222222"]))
        rbac.reload_policy()
        assert rbac.mode == "shadow"
        rbac.client(UMA).messages.create(model=OPUS, max_tokens=10, messages=MESSAGES)
        _sent(fake_claude, org=ORG)


# -- item 4: races -----------------------------------------------------------------------------------

RACE_BEFORE = {
    "version": 1,
    "roles": {
        "user": USER,
        "power": {"inherits": ["user"], "models": ["claude-opus-*"]},
        "lead": {"inherits": ["power"]},
    },
}
RACE_AFTER = {**RACE_BEFORE, "roles": {**RACE_BEFORE["roles"], "lead": {"inherits": ["user"]}}}  # lead is demoted
WORKERS, ITERATIONS_BEFORE, ITERATIONS_AFTER = 4, 60, 60


def test_no_decision_after_a_reload_uses_the_old_policy(fake_claude: FakeClaude) -> None:
    rbac = RBAC(RACE_BEFORE, api_key=PROD_KEY, base_url=fake_claude.url)
    held = rbac.client(LEO).with_options(max_retries=0)  # obtained before the reload, used throughout
    reloaded = threading.Event()
    warmed = threading.Barrier(WORKERS + 1)
    outcomes: list[tuple[str, bool, bool]] = []  # (what, started after the reload returned, allowed)
    lock = threading.Lock()

    def guard() -> bool:
        try:
            rbac.require(LEO, "power")
        except AccessDenied:
            return False
        return True

    def call() -> bool:
        try:
            held.messages.create(model=OPUS, max_tokens=10, messages=MESSAGES)
        except AccessDenied:
            return False
        return True

    def worker(index: int) -> None:
        decide = guard if index % 2 else call
        done_before = done_after = 0
        deadline = time.monotonic() + 30
        while done_after < ITERATIONS_AFTER and time.monotonic() < deadline:
            if done_before == ITERATIONS_BEFORE and not done_after:
                warmed.wait(10)  # every worker has warmed up: the main thread reloads now, under them
                done_before += 1
            after = reloaded.is_set()  # read before the decision starts
            allowed = decide()
            with lock:
                outcomes.append((decide.__name__, after, allowed))
            done_before += not after
            done_after += after

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(WORKERS)]
    for thread in threads:
        thread.start()
    warmed.wait(10)  # every worker is running; now reload under them
    rbac.reload_policy(RACE_AFTER)
    reloaded.set()
    for thread in threads:
        thread.join(30)
    rbac.close()

    after = [(what, allowed) for what, started_after, allowed in outcomes if started_after]
    assert len(after) >= WORKERS * ITERATIONS_AFTER
    assert not [entry for entry in after if entry[1]], "a decision after the reload used the old policy"
    assert {what for what, _ in after} == {"guard", "call"}
    before = [allowed for _, started_after, allowed in outcomes if not started_after]
    assert len(before) >= WORKERS * ITERATIONS_BEFORE
    assert sum(before) >= WORKERS * ITERATIONS_BEFORE // 2  # the old grants were in force until then
    assert fake_claude.count() <= sum(1 for what, started_after, _ in outcomes if what == "call" and not started_after)


def test_a_held_async_client_obeys_the_new_policy(fake_claude: FakeClaude) -> None:
    rbac = RBAC(RACE_BEFORE, api_key=PROD_KEY, base_url=fake_claude.url)

    async def main() -> None:
        held = rbac.async_client(LEO)
        await held.messages.create(model=OPUS, max_tokens=10, messages=MESSAGES)
        rbac.reload_policy(RACE_AFTER)
        with pytest.raises(AccessDenied):
            await held.messages.create(model=OPUS, max_tokens=10, messages=MESSAGES)
        await rbac.aclose()

    asyncio.run(main())
    assert fake_claude.count() == 1


@pytest.fixture
def race_rbac(fake_claude: FakeClaude, storage: str, key_prefix: str) -> Iterator[RBAC]:
    with RBAC(RACE_BEFORE, storage=storage, key_prefix=key_prefix, api_key=PROD_KEY, base_url=fake_claude.url) as rbac:
        yield rbac


def test_a_role_added_by_a_reload_gets_its_rate_limit(race_rbac: RBAC, fake_claude: FakeClaude) -> None:
    nina = Principal("nina", "newbie")
    held = race_rbac.client(nina)  # built while the policy has no such role
    with pytest.raises(AccessDenied):  # unknown_role
        held.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)
    race_rbac.reload_policy({**RACE_BEFORE, "roles": {**RACE_BEFORE["roles"], "newbie": {**USER, "rpm": 2}}})
    for _ in range(2):
        held.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)
    with pytest.raises(RateLimited):
        held.messages.create(model=HAIKU, max_tokens=10, messages=MESSAGES)
    assert fake_claude.count() == 2
