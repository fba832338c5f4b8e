"""No error prints a value that looks like an API key, only its fingerprint (issue #14, item 10).

A key pasted in the wrong place ends up in an error message, and error messages end up in logs, CI
output and bug reports. The test pastes a sentinel key into every field and every key name of a policy
(loaded from a dict, and from JSON and YAML files), into broken TOML, JSON and YAML documents, into the
file name, into each keyword of ``RBAC(...)`` and into every Django ``CLAUDE_RBAC`` setting, and asserts
that no message, problem field or repr holds it: at most its fingerprint.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from claude_rbac import RBAC, AccessDenied, Policy, PolicyError, Principal
from claude_rbac.integrations.django.config import KEYS, read_config
from claude_rbac.policy import fingerprint
from claude_rbac.testing import FakeClaude

SENTINEL = "sk-ant-api03-" + "S3ntInel" * 11 + "-Zq9X"
SECRET_PART = "S3ntInelS3ntInel"
"""Any run of the sentinel's body: a message that cut the key short must not show this either."""
ORG = "11111111-1111-4111-8111-111111111111"

BASE: dict[str, Any] = {
    "version": 1,
    "on_excess": "clamp",
    "mode": "enforce",
    "default_workspace": "prod",
    "allowed_org_ids": [ORG],
    "revoked": ["sk-ant-api03...AbCd#1a2b3c4d"],
    "workspaces": {
        "prod": {
            "api_key": {"env": "PROD_KEY"},
            "services": {"search": {"file": "/run/secrets/claude"}},
            "base_url": "https://gateway.internal",
        }
    },
    "roles": {
        "user": {
            "models": ["claude-haiku-*"],
            "max_tokens": 512,
            "rpm": 10,
            "tpm": 1000,
            "allowed": True,
            "description": "Users",
            "budget": {"day": 100},
            "pool": {"tpm": 5000, "budget": {"month": 9000}},
            "workspace": "prod",
            "mode": "shadow",
            "batches": "own",
        },
        "power": {"inherits": ["user"], "models": ["claude-opus-*"]},
    },
}


def assert_hidden(text: str) -> None:
    assert SENTINEL not in text
    assert SECRET_PART not in text
    assert SECRET_PART.lower() not in text.lower()


def assert_error_hides_it(error: BaseException) -> None:
    assert_hidden(str(error))
    assert_hidden(repr(error))
    for problem in getattr(error, "problems", ()):
        assert_hidden(repr(problem))


def variants(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(where, document) for every place the sentinel can go: each value, list item and key name."""
    if isinstance(value, dict):
        for key, item in value.items():
            renamed = {(SENTINEL if name == key else name): entry for name, entry in value.items()}
            yield ".".join(map(str, (*path, f"<key {key}>"))), renamed
            for where, replaced in variants(item, (*path, key)):
                yield where, {**value, key: replaced}
    elif isinstance(value, list):
        for index, item in enumerate(value):
            for where, replaced in variants(item, (*path, index)):
                yield where, [*value[:index], replaced, *value[index + 1 :]]
        yield ".".join(map(str, (*path, "<added item>"))), [*value, SENTINEL]
    else:
        yield ".".join(map(str, path)), SENTINEL


POLICIES = dict(variants(BASE))


def test_the_base_policy_loads() -> None:
    """The documents below differ from a valid one only by where the sentinel is."""
    assert Policy.from_dict(BASE).roles["power"].models == ("claude-opus-*", "claude-haiku-*")
    assert len(POLICIES) > 60


@pytest.mark.parametrize("document", POLICIES.values(), ids=POLICIES.keys())
def test_a_key_pasted_anywhere_in_a_policy(document: dict[str, Any], tmp_path: Path) -> None:
    errors: list[BaseException] = []
    for load in (
        lambda: Policy.from_dict(document),
        lambda: Policy.from_file(_written(tmp_path / "rbac.json", json.dumps(document))),
        lambda: Policy.from_file(_written(tmp_path / "rbac.yaml", yaml.safe_dump(document))),
    ):
        with pytest.raises(PolicyError) as info:  # a key-like value anywhere is itself a problem
            load()
        errors.append(info.value)
    for error in errors:
        assert_error_hides_it(error)


def _written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BROKEN = {
    "toml bare value": ("rbac.toml", f"version = 1\n[roles.user]\nmodels = [{SENTINEL}]\n"),
    "toml bare key": ("rbac.toml", f"version = 1\n{SENTINEL} = \n"),
    "toml duplicate key": ("rbac.toml", f'version = 1\n"{SENTINEL}" = 1\n"{SENTINEL}" = 2\n'),
    "toml unterminated string": ("rbac.toml", f'version = 1\nmode = "{SENTINEL}\n'),
    "json bare value": ("rbac.json", f'{{"roles": {{"user": {{"models": [{SENTINEL}]}}}}}}'),
    "json duplicate key": ("rbac.json", f'{{"{SENTINEL}": 1, "{SENTINEL}": 2}}'),
    "json unterminated": ("rbac.json", f'{{"mode": "{SENTINEL}'),
    "yaml undefined alias": ("rbac.yaml", f"version: 1\nroles: *{SENTINEL}\n"),
    "yaml bad indentation": ("rbac.yaml", f"version: 1\nroles:\n  user: {SENTINEL}\n bad: [\n"),
    "yaml tab": ("rbac.yaml", f"version: 1\nmode:\t{SENTINEL}: : x\n"),
    "yaml unknown tag": ("rbac.yaml", f"version: 1\nmode: !{SENTINEL} x\n"),
}


@pytest.mark.parametrize(("name", "text"), BROKEN.values(), ids=BROKEN.keys())
def test_parse_errors(tmp_path: Path, name: str, text: str) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_file(_written(tmp_path / name, text))
    assert_error_hides_it(info.value)


def test_a_file_named_like_a_key(tmp_path: Path) -> None:
    for name in (f"{SENTINEL}.toml", f"{SENTINEL}.txt", f"{SENTINEL}"):
        with pytest.raises(PolicyError) as info:
            Policy.from_file(tmp_path / name)
        assert_error_hides_it(info.value)
        assert fingerprint(SENTINEL) in str(info.value)


RBAC_OPTIONS: dict[str, Any] = {
    "mode": SENTINEL,
    "on_storage_error": SENTINEL,
    "audit_user_id": SENTINEL,
    "allowed_org_ids": [SENTINEL],
    "revoked": SENTINEL,
    "revoked_timeout": SENTINEL,
    "storage": SENTINEL,
    "client_options": {SENTINEL: 1},
    "policy": {"roles": {SENTINEL: {"models": ["claude-haiku-*"]}}},
}


@pytest.mark.parametrize(("option", "value"), RBAC_OPTIONS.items(), ids=RBAC_OPTIONS.keys())
def test_rbac_options(option: str, value: Any) -> None:
    options = {"api_key": "sk-ant-api03-placeholder-key-0000000000000000000", option: value}
    policy = options.pop("policy", Policy.default())
    with pytest.raises((PolicyError, ValueError, TypeError)) as info:
        RBAC(policy, **options)
    assert_error_hides_it(info.value)


def test_route_scopes_roles_and_models(fake_claude: FakeClaude) -> None:
    rbac = RBAC(Policy.default(), api_key="sk-ant-api03-placeholder-key-0000000000000000000", base_url=fake_claude.url)
    checks: list[Callable[[], object]] = [
        lambda: rbac.scope(models=[SENTINEL]),
        lambda: rbac.validate_role(SENTINEL),
        lambda: rbac.require(Principal("u", SENTINEL), "user"),
        lambda: rbac.client(Principal("u", "user")).messages.create(model=SENTINEL, max_tokens=5, messages=[]),
    ]
    for check in checks:
        with pytest.raises((PolicyError, AccessDenied)) as info:
            check()
        assert_error_hides_it(info.value)
    assert_hidden(rbac.check(Principal("u", "user"), model=SENTINEL).message)
    rbac.close()


DJANGO_SETTINGS: dict[str, dict[str, Any]] = {
    **{f"{key} = the key": {key: SENTINEL} for key in KEYS},
    **{f"{key} = {{'env': the key}}": {key: {"env": SENTINEL}} for key in ("API_KEY",)},
    "API_KEY = {'file': the key}": {"API_KEY": {"file": SENTINEL}},
    "a setting named like the key": {SENTINEL: 1},
    "an OPTIONS name": {"OPTIONS": {SENTINEL: 1}},
    "a role named like the key": {"POLICY": {"roles": {SENTINEL: {"models": ["claude-haiku-*"]}}}},
    "a policy value": {"POLICY": {"roles": {"user": {"models": [SENTINEL]}}}},
    "a dotted path": {"PRINCIPAL_RESOLVER": f"myproject.{SENTINEL}.resolve"},
}


@pytest.mark.parametrize("setting", DJANGO_SETTINGS.values(), ids=DJANGO_SETTINGS.keys())
def test_django_settings(setting: dict[str, Any]) -> None:
    config, problems = read_config(setting)
    for problem in problems:
        assert_hidden(problem.msg)
        assert_hidden(str(problem.hint))
    if config is not None:  # a value the setting accepts (a key prefix, a storage URI...) is not echoed anywhere
        assert not problems
