"""Each system check fires on the misconfiguration it is for, names it, and is quiet on a sound project."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import override_settings

from claude_rbac.integrations.django.checks import TAG

from .project import AUTH_MIDDLEWARE, OUR_MIDDLEWARE, SESSION_MIDDLEWARE
from .support import login


def messages() -> list[Any]:
    return [message for message in run_checks(tags=[TAG]) if message.id.startswith("claude_rbac.")]


def ids() -> list[str]:
    return [message.id for message in messages()]


def the_one(check_id: str) -> Any:
    found = messages()
    assert [message.id for message in found] == [check_id]
    return found[0]


def test_a_sound_project_passes_manage_py_check(claude_settings: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert messages() == []
    call_command("check")
    assert "System check identified no issues" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        ({"POLCY": "rbac.toml"}, "unknown key 'POLCY'"),
        ({"GROUP_ROLES": None, "ROLES_FROM_GROUPS": "yes"}, "['ROLES_FROM_GROUPS'] must be True or False, got str"),
        ({"SUPERUSER_ROLE": 1}, "['SUPERUSER_ROLE'] must be a role name, got int"),
        ({"STORAGE": "localhost:6379"}, "['STORAGE'] must be a limits storage URI"),
        ({"STORAGE": "memroy://"}, "['STORAGE'] has the unknown storage scheme 'memroy'"),
        ({"STORAGE": "redis+sentinal://:pw@host:26379/main"}, "unknown storage scheme 'redis+sentinal'"),
        ({"PRINCIPAL_LOADER": "myproject.nowhere.resolve"}, "['PRINCIPAL_LOADER'] cannot be imported"),
        ({"PRINCIPAL_LOADER": 42}, "['PRINCIPAL_LOADER'] must be a dotted path to a function"),
        ({"API_KEY": "sk-ant-api03-abcdefghijklmnop"}, "looks like an API key"),
        ({"API_KEY": {"env": "A-B"}}, "'A-B' is not an environment variable name"),
        ({"API_KEY": {"vault": "x"}}, '{"env": "NAME"} or {"file": "path"}'),
        ({"OPTIONS": {"mode": "shadow", "retries": 3}}, "has 'retries', which RBAC() does not take here"),
        ({"OPTIONS": {"storage": "redis://x"}}, "has 'storage', which RBAC() does not take here"),
    ],
)
def test_e001_malformed_setting(claude_settings: Any, setting: dict[str, Any], needle: str) -> None:
    claude_settings(**setting)
    assert needle in the_one("claude_rbac.E001").msg


def test_e001_setting_not_a_dict(claude_settings: Any) -> None:
    with override_settings(CLAUDE_RBAC=["POLICY"]):
        assert "settings.CLAUDE_RBAC must be a dict, got list" in the_one("claude_rbac.E001").msg


def test_e002_policy_file_missing(claude_settings: Any, tmp_path: Path) -> None:
    claude_settings(POLICY=tmp_path / "missing.toml")
    message = the_one("claude_rbac.E002").msg
    assert str(tmp_path / "missing.toml") in message
    assert "cannot read the policy file" in message


def test_e002_policy_with_an_unknown_role(claude_settings: Any, tmp_path: Path) -> None:
    policy = tmp_path / "rbac.toml"
    policy.write_text('version = 1\n[roles.user]\nmodels = ["claude-haiku-*"]\ninherits = ["viewr"]\n')
    claude_settings(POLICY=policy)
    message = the_one("claude_rbac.E002").msg
    assert str(policy) in message
    assert "roles.user.inherits" in message
    assert "viewr" in message


def test_e002_policy_dict(claude_settings: Any) -> None:
    claude_settings(POLICY={"version": 1, "roles": {"user": {"models": ["claude-haiku-*"], "rpm": -1}}})
    message = the_one("claude_rbac.E002").msg
    assert "settings.CLAUDE_RBAC['POLICY']" in message
    assert "roles.user.rpm" in message


def test_e003_superuser_role_unknown(claude_settings: Any) -> None:
    claude_settings(SUPERUSER_ROLE="root")
    message = the_one("claude_rbac.E003")
    assert "'root', a role the policy does not have" in message.msg
    assert "viewer, user, power, admin" in message.hint


def test_e004_guards_naming_unknown_roles(claude_settings: Any) -> None:
    with override_settings(ROOT_URLCONF="tests.integrations.django.bad_urls"):
        found = messages()
    assert [message.id for message in found] == ["claude_rbac.E004"] * 3
    text = "\n".join(message.msg for message in found)
    assert "URL 'typo' (tests.integrations.django.bad_urls.typo) requires role 'superadmin'" in text
    assert (
        "URL 'norole' (tests.integrations.django.bad_urls.NoRole) uses RoleRequiredMixin without a required_role"
        in text
    )
    assert "URL 'method' (tests.integrations.django.bad_urls.UnknownMethodRole.get) requires role 'owner'" in text
    assert "'fine'" not in text


def test_e004_quiet_for_the_project_urls(claude_settings: Any) -> None:
    assert "claude_rbac.E004" not in ids()  # every guard in tests/integrations/django/urls.py is sound


def test_e005_middleware_before_authentication(claude_settings: Any) -> None:
    with override_settings(MIDDLEWARE=[SESSION_MIDDLEWARE, OUR_MIDDLEWARE, AUTH_MIDDLEWARE]):
        message = the_one("claude_rbac.E005")
    assert "comes before django.contrib.auth.middleware.AuthenticationMiddleware" in message.msg


def test_e006_middleware_missing(claude_settings: Any) -> None:
    with override_settings(MIDDLEWARE=[SESSION_MIDDLEWARE, AUTH_MIDDLEWARE]):
        assert "is not in MIDDLEWARE" in the_one("claude_rbac.E006").msg


def test_e007_authentication_missing_with_the_default_resolver(claude_settings: Any) -> None:
    with override_settings(MIDDLEWARE=[SESSION_MIDDLEWARE, OUR_MIDDLEWARE]):
        assert "reads request.user" in the_one("claude_rbac.E007").msg
        claude_settings(PRINCIPAL_LOADER="tests.integrations.django.test_function_views.async_session_resolver")
        assert ids() == []  # a resolver of your own may not need AuthenticationMiddleware


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["pytest"], {"WEB_CONCURRENCY": "4"}, "runs 4 worker processes (WEB_CONCURRENCY)"),
        (["/srv/venv/bin/gunicorn", "-w", "3", "proj.wsgi"], {}, "3 worker processes under gunicorn (--workers on"),
        (["/srv/venv/bin/gunicorn", "--workers=5", "proj.wsgi"], {}, "runs 5 worker processes under gunicorn"),
        (["/srv/venv/bin/gunicorn", "proj.wsgi"], {"GUNICORN_CMD_ARGS": "--bind :80 -w 2"}, "2 worker processes"),
        (["uvicorn", "proj.asgi:application", "--workers", "8"], {}, "runs 8 worker processes under uvicorn"),
    ],
)
def test_w001_memory_storage_in_a_multi_process_deployment(
    claude_settings: Any, monkeypatch: pytest.MonkeyPatch, argv: list[str], environ: dict[str, str], expected: str
) -> None:
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    monkeypatch.setattr("sys.argv", argv)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    message = the_one("claude_rbac.W001")
    assert expected in message.msg
    assert "Each process keeps its own counters" in message.msg
    assert "redis://" in message.hint
    assert "it cannot see replicas started by a process manager" in message.hint


@pytest.fixture
def deployment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``manage.py check`` run in a project directory: no worker count in the environment."""
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    monkeypatch.setattr("sys.argv", ["manage.py", "check"])
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_w001_reads_gunicorn_conf_py_where_gunicorn_would(
    claude_settings: Any, deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ids() == []
    config = deployment / "gunicorn.conf.py"
    config.write_text('bind = "0.0.0.0:8000"\nworkers = 3\n', encoding="utf-8")
    assert f"runs 3 worker processes under gunicorn (workers = 3 in {config})" in the_one("claude_rbac.W001").msg
    monkeypatch.setenv("WEB_CONCURRENCY", "1")  # gunicorn: the file wins over the environment's default
    assert "runs 3 worker processes" in the_one("claude_rbac.W001").msg
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--workers 1")  # ...and GUNICORN_CMD_ARGS over the file
    assert ids() == []


def test_w001_a_worker_count_computed_at_run_time(claude_settings: Any, deployment: Path) -> None:
    (deployment / "deploy").mkdir()
    config = deployment / "deploy" / "prod.py"
    config.write_text("import multiprocessing\nworkers = multiprocessing.cpu_count() * 2 + 1\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GUNICORN_CMD_ARGS", f"-c {config}")
        message = the_one("claude_rbac.W001").msg
    assert f"sets its worker count at run time (workers = multiprocessing.cpu_count() * 2 + 1 in {config})" in message
    assert "multiplied by the number of processes" in message


def test_w001_quiet_for_one_process_or_shared_storage(
    claude_settings: Any, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    monkeypatch.setattr("sys.argv", ["gunicorn", "-w", "1", "proj.wsgi"])
    assert ids() == []
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    claude_settings(STORAGE=redis_url)
    assert ids() == []


def test_w002_api_key_missing(claude_settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CLAUDE_RBAC_TEST_MISSING_KEY", raising=False)
    claude_settings(API_KEY={"env": "CLAUDE_RBAC_TEST_MISSING_KEY"})
    assert "the environment variable CLAUDE_RBAC_TEST_MISSING_KEY is missing" in the_one("claude_rbac.W002").msg
    monkeypatch.setenv("CLAUDE_RBAC_TEST_MISSING_KEY", "sk-ant-test-0000000000000000")
    claude_settings(API_KEY={"env": "CLAUDE_RBAC_TEST_MISSING_KEY"})
    assert ids() == []
    key_file = tmp_path / "anthropic.key"
    claude_settings(API_KEY={"file": str(key_file)})
    assert f"the file {key_file} is missing" in the_one("claude_rbac.W002").msg


# -- at startup: servers such as gunicorn never run manage.py check ---------------------------------


def test_startup_refuses_a_misconfigured_project(claude_settings: Any, make_user: Any) -> None:
    user = make_user(role="admin")
    with (
        override_settings(MIDDLEWARE=[SESSION_MIDDLEWARE, OUR_MIDDLEWARE, AUTH_MIDDLEWARE]),
        pytest.raises(ImproperlyConfigured, match=r"claude_rbac\.E005: .*AuthenticationMiddleware"),
    ):
        login(user).get("/admin")
    claude_settings(SUPERUSER_ROLE="root")
    with pytest.raises(ImproperlyConfigured, match=r"claude_rbac\.E003"):
        login(user).get("/admin")
    claude_settings(STORAGE="memroy://")  # a misspelt storage stops the app with its check id, not limits' error
    with pytest.raises(ImproperlyConfigured, match=r"claude_rbac\.E001: .*unknown storage scheme 'memroy'"):
        login(user).get("/admin")


def test_startup_needs_an_api_key(claude_settings: Any, make_user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAUDE_RBAC_TEST_MISSING_KEY", raising=False)
    claude_settings(API_KEY={"env": "CLAUDE_RBAC_TEST_MISSING_KEY"}, OPTIONS={})
    with pytest.raises(ImproperlyConfigured, match="no Anthropic API key in the environment variable"):
        login(make_user(role="admin")).get("/admin")


def test_silenced_checks_are_honoured(
    claude_settings: Any, make_user: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    with override_settings(SILENCED_SYSTEM_CHECKS=["claude_rbac.W001"]):
        call_command("check")
    assert "System check identified no issues (1 silenced)" in capsys.readouterr().out
    with override_settings(
        MIDDLEWARE=[SESSION_MIDDLEWARE, OUR_MIDDLEWARE, AUTH_MIDDLEWARE], SILENCED_SYSTEM_CHECKS=["claude_rbac.E005"]
    ):
        response = login(make_user(role="admin")).get("/admin")  # the app starts: E005 is silenced...
    assert response.status_code == 200  # ...and the guard loads the principal lazily, after request.user is set


def test_startup_warns_about_memory_storage_in_many_workers(
    claude_settings: Any, make_user: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    claude_settings(KEY_PREFIX="rebuilt")  # a fresh RBAC, built at startup
    with caplog.at_level(logging.WARNING, logger="claude_rbac"):
        assert login(make_user(role="admin")).get("/admin").status_code == 200
    (warning,) = [record for record in caplog.records if record.name == "claude_rbac"]
    assert "memory://" in warning.getMessage()
    assert "4 workers" in warning.getMessage()


def test_messages_never_echo_a_secret(claude_settings: Any) -> None:
    secret = "sk-ant-api03-0123456789abcdefghij"
    claude_settings(API_KEY={"key": secret}, STORAGE=f"user:{secret}@redis:6379", BASE_URL=[secret])
    found = messages()
    assert {message.id for message in found} == {"claude_rbac.E001"}
    assert len(found) == 3
    assert secret not in "\n".join(f"{message.msg} {message.hint}" for message in found)


def test_w003_the_old_loader_setting_still_works_and_names_its_new_name(claude_settings: Any) -> None:
    claude_settings(PRINCIPAL_RESOLVER="tests.integrations.django.test_function_views.async_session_resolver")
    warning = the_one("claude_rbac.W003")
    assert "['PRINCIPAL_RESOLVER'] is deprecated" in warning.msg
    assert "PRINCIPAL_LOADER" in warning.hint
