"""Workspaces, key sources, fingerprints, revocation, rotation and the tenant restriction."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from claude_rbac import RBAC, AccessDenied, BackendUnavailable, Policy, PolicyError, Principal
from claude_rbac.enforcement import is_revoked
from claude_rbac.policy import fingerprint, format_org_ids
from claude_rbac.tenant import TENANT_ERROR, tenant_violation
from claude_rbac.testing import FakeClaude

MESSAGES = [{"role": "user", "content": "hi"}]
PROD = "sk-ant-api03-production-key-0000000000000000000000000000-PROD"
DEV = "sk-ant-api03-development-key-000000000000000000000000000-DEVK"
SEARCH = "sk-ant-api03-search-service-key-00000000000000000000000-SRCH"
ORG_A = "11111111-1111-4111-8111-111111111111"
ORG_B = "22222222-2222-4222-8222-222222222222"


def workspace_policy(**extra: Any) -> dict[str, Any]:
    return {
        "workspaces": {
            "production": {
                "api_key": {"env": "CLAUDE_RBAC_TEST_PROD"},
                "services": {"search-service": {"env": "CLAUDE_RBAC_TEST_SEARCH"}},
            },
            "development": {"api_key": {"env": "CLAUDE_RBAC_TEST_DEV"}},
        },
        "default_workspace": "production",
        "roles": {
            "intern": {"models": ["claude-haiku-*"], "workspace": "development"},
            "user": {"models": ["claude-haiku-*"]},
        },
        **extra,
    }


@pytest.fixture
def keys_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_RBAC_TEST_PROD", PROD)
    monkeypatch.setenv("CLAUDE_RBAC_TEST_DEV", DEV)
    monkeypatch.setenv("CLAUDE_RBAC_TEST_SEARCH", SEARCH)


class TestWorkspaces:
    @pytest.mark.usefixtures("keys_env")
    def test_each_role_uses_its_workspace_key(self, fake_claude: FakeClaude) -> None:
        rbac = RBAC(workspace_policy(), base_url=fake_claude.url)
        rbac.client(Principal("i", "intern")).messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
        rbac.client(Principal("u", "user")).messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
        assert fake_claude.api_keys_seen == [DEV, PROD]

    @pytest.mark.usefixtures("keys_env")
    def test_the_service_selects_its_key(self, fake_claude: FakeClaude) -> None:
        rbac = RBAC(workspace_policy(), base_url=fake_claude.url, service="search-service")
        rbac.client(Principal("u", "user")).messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
        rbac.client(Principal("i", "intern")).messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
        assert fake_claude.api_keys_seen == [SEARCH, DEV]  # development has no key for the service

    @pytest.mark.usefixtures("keys_env")
    def test_a_workspace_base_url(self, fake_claude: FakeClaude) -> None:
        with FakeClaude() as dev_gateway:
            policy = workspace_policy()
            policy["workspaces"]["development"]["base_url"] = dev_gateway.url
            rbac = RBAC(policy, base_url=fake_claude.url)
            rbac.client(Principal("i", "intern")).messages.create(
                model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES
            )
            assert dev_gateway.api_keys_seen == [DEV]
        assert fake_claude.requests == []

    def test_a_missing_key_fails_at_startup(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CLAUDE_RBAC_TEST_PROD", PROD)
        monkeypatch.setenv("CLAUDE_RBAC_TEST_SEARCH", SEARCH)
        monkeypatch.delenv("CLAUDE_RBAC_TEST_DEV", raising=False)
        with pytest.raises(PolicyError, match="no API key found for workspace 'development': env CLAUDE_RBAC_TEST_DEV"):
            RBAC(workspace_policy())

    @pytest.mark.parametrize(
        "workspaces",
        [
            {"production": {"api_key": PROD}},
            {"production": {"api_key": {"env": "X"}, "base_url": f"https://x/{PROD}"}},
            {"production": {"api_key": {"literal": "x"}}},
            {"production": {"api_key": {"env": "not a name"}}},
        ],
    )
    def test_keys_never_live_in_a_policy(self, workspaces: dict[str, Any]) -> None:
        with pytest.raises(PolicyError) as info:
            Policy.from_dict({"workspaces": workspaces, "roles": {"user": {"models": ["m"]}}}, source="rbac.toml")
        assert "rbac.toml: workspaces.production" in str(info.value)
        assert PROD not in str(info.value)

    def test_a_key_anywhere_in_a_policy_file_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "rbac.toml"
        path.write_text(f'[roles.user]\nmodels = ["m"]\ndescription = "ask {PROD[:40]}"\n')
        with pytest.raises(PolicyError, match=r"roles.user.description: looks like an API key"):
            Policy.from_file(path)

    def test_roles_must_name_known_workspaces(self) -> None:
        policy = workspace_policy()
        policy["roles"]["user"]["workspace"] = "staging"
        with pytest.raises(PolicyError, match=r"roles\.user\.workspace: names unknown workspace 'staging'"):
            Policy.from_dict(policy)


class TestFingerprints:
    def test_shape(self) -> None:
        key_id = fingerprint(PROD)
        assert key_id.startswith("sk-ant-api03...PROD#")
        assert len(key_id.split("#")[1]) == 8
        assert fingerprint(PROD) == key_id
        assert fingerprint(PROD[:-1] + "X") != key_id
        assert fingerprint("short").startswith("key...#")

    @pytest.mark.usefixtures("keys_env")
    def test_a_sentinel_key_appears_nowhere(
        self, fake_claude: FakeClaude, span_exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="claude_rbac")
        rbac = RBAC(workspace_policy(revoked=[fingerprint(DEV)]), base_url=fake_claude.url)
        errors: list[Exception] = []
        rbac.require(Principal("u", "user"), "user")
        rbac.client(Principal("u", "user")).messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
        for principal, model in ((Principal("i", "intern"), "claude-haiku-4-5"), (Principal("u", "user"), "opus")):
            try:
                rbac.client(principal).messages.create(model=model, max_tokens=5, messages=MESSAGES)
            except AccessDenied as exc:
                errors.append(exc)
        spans = "\n".join(span.to_json() for span in span_exporter.get_finished_spans())
        logs = "\n".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records)
        raised = "\n".join(f"{e} {e!r} {json.dumps(getattr(e, 'to_dict', dict)())}" for e in errors)
        reprs = repr(rbac) + repr(rbac.keys.active()) + repr(rbac.keys.workspaces) + repr(rbac.policy)
        for key in (PROD, DEV, SEARCH):
            for text in (spans, logs, raised, reprs):
                assert key not in text
                assert key[12:40] not in text
        assert f'"claude_rbac.api_key.id": "{fingerprint(PROD)}"' in spans
        assert '"claude_rbac.workspace": "production"' in spans
        assert len(errors) == 2


class TestRevocation:
    @pytest.mark.usefixtures("keys_env")
    def test_a_revoked_key_is_refused_locally(self, fake_claude: FakeClaude) -> None:
        rbac = RBAC(workspace_policy(revoked=[fingerprint(DEV)]), base_url=fake_claude.url)
        with pytest.raises(AccessDenied) as info:
            rbac.client(Principal("i", "intern")).messages.create(
                model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES
            )
        assert info.value.reason == "key_revoked"
        assert fake_claude.requests == []
        rbac.client(Principal("u", "user")).messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
        assert fake_claude.api_keys_seen == [PROD]

    @pytest.mark.usefixtures("keys_env")
    def test_revocations_from_a_callable_apply_at_once(self, fake_claude: FakeClaude) -> None:
        revoked: set[str] = set()
        # revoked_ttl=0: asked on every call (the default caches the answer for a second)
        rbac = RBAC(workspace_policy(), base_url=fake_claude.url, revoked=lambda: revoked, revoked_ttl=0)
        client = rbac.client(Principal("u", "user"))
        client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
        revoked.add(fingerprint(PROD))
        with pytest.raises(AccessDenied, match="revoked"):
            client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
        assert fake_claude.count() == 1

    @pytest.mark.usefixtures("keys_env")
    def test_a_failing_revocation_source_fails_closed(self, fake_claude: FakeClaude) -> None:
        def broken() -> list[str]:
            raise ConnectionError("revocation service down")

        rbac = RBAC(workspace_policy(), base_url=fake_claude.url, revoked=broken)
        with pytest.raises(BackendUnavailable):
            rbac.client(Principal("u", "user")).messages.create(
                model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES
            )
        assert fake_claude.requests == []

    def test_comparison(self) -> None:
        assert is_revoked("a#1", ["b#2", "a#1"])
        assert not is_revoked("a#1", ["a#10", "A#1", ""])


class TestRotation:
    def test_a_key_file_rotated_under_traffic(self, tmp_path: Path) -> None:
        old, new = PROD, "sk-ant-api03-rotated-production-key-0000000000000000000-NEWK"
        key_file = tmp_path / "claude.key"
        key_file.write_text(old)
        policy = {
            "workspaces": {"production": {"api_key": {"file": str(key_file)}}},
            "roles": {"user": {"models": ["claude-haiku-*"]}},
        }
        with FakeClaude(delay=0.02) as fake:
            rbac = RBAC(policy, base_url=fake.url)
            failures: list[BaseException] = []
            stop = threading.Event()

            def traffic() -> None:
                while not stop.is_set():
                    try:
                        rbac.client(Principal("u", "user")).messages.create(
                            model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES
                        )
                    except BaseException as exc:
                        failures.append(exc)

            threads = [threading.Thread(target=traffic) for _ in range(4)]
            for thread in threads:
                thread.start()
            time.sleep(0.5)
            replacement = tmp_path / "claude.key.new"
            replacement.write_text(new + "\n")
            os.replace(replacement, key_file)  # atomic, as secret managers write
            switched = time.time()
            time.sleep(2.5)  # mtimes are re-checked at most once a second
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
            assert failures == []
            before = [r.api_key for r in fake.requests if r.received_at < switched]
            late = [r.api_key for r in fake.requests if r.received_at > switched + 1.2]
            assert set(before) == {old}
            assert late
            assert set(late) == {new}
            assert set(fake.api_keys_seen) == {old, new}

    def test_calls_in_flight_finish_on_the_old_key(self, tmp_path: Path) -> None:
        key_file = tmp_path / "claude.key"
        key_file.write_text(PROD)
        policy = {
            "workspaces": {"production": {"api_key": {"file": str(key_file)}}},
            "roles": {"user": {"models": ["claude-haiku-*"]}},
        }
        with FakeClaude(delay=0.3) as fake:
            rbac = RBAC(policy, base_url=fake.url)
            client = rbac.client(Principal("u", "user"))
            outcome: list[str] = []
            in_flight = threading.Thread(
                target=lambda: outcome.append(
                    client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES).id
                )
            )
            in_flight.start()
            time.sleep(0.1)
            key_file.write_text(DEV)
            assert rbac.reload_keys() == ["production"]
            rbac.client(Principal("u", "user")).messages.create(
                model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES
            )
            in_flight.join(timeout=10)
            assert len(outcome) == 1
            assert fake.api_keys_seen == [PROD, DEV]

    def test_sighup_reloads(self, tmp_path: Path, fake_claude: FakeClaude) -> None:
        key_file = tmp_path / "claude.key"
        key_file.write_text(PROD)
        policy = {
            "workspaces": {"production": {"api_key": {"file": str(key_file)}}},
            "roles": {"user": {"models": ["claude-haiku-*"]}},
        }
        rbac = RBAC(policy, base_url=fake_claude.url)
        previous = signal.getsignal(signal.SIGHUP)
        try:
            rbac.reload_keys_on_signal()
            key_file.write_text(DEV)
            os.kill(os.getpid(), signal.SIGHUP)
            rbac.client(Principal("u", "user")).messages.create(
                model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES
            )
        finally:
            signal.signal(signal.SIGHUP, previous)
        assert fake_claude.api_keys_seen == [DEV]

    def test_a_deleted_or_empty_key_file_keeps_the_last_good_key(self, tmp_path: Path, fake_claude: FakeClaude) -> None:
        key_file = tmp_path / "claude.key"
        key_file.write_text(PROD)
        policy = {
            "workspaces": {"production": {"api_key": {"file": str(key_file)}}},
            "roles": {"user": {"models": ["claude-haiku-*"]}},
        }
        rbac = RBAC(policy, base_url=fake_claude.url)
        key_file.write_text("")
        assert rbac.reload_keys() == []
        key_file.unlink()
        assert rbac.reload_keys() == []
        rbac.client(Principal("u", "user")).messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
        assert fake_claude.api_keys_seen == [PROD]


class TestTenantRestriction:
    def test_the_header_is_sent_on_every_request(self, fake_claude: FakeClaude) -> None:
        rbac = RBAC(
            {"roles": {"user": {"models": ["claude-haiku-*"]}}},
            api_key=PROD,
            base_url=fake_claude.url,
            allowed_org_ids=[ORG_A, ORG_B.upper()],
        )
        client = rbac.client(Principal("u", "user"))
        client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
        client.messages.count_tokens(model="claude-haiku-4-5", messages=MESSAGES)
        assert [r.headers["anthropic-allowed-org-ids"] for r in fake_claude.requests] == [f"{ORG_A},{ORG_B}"] * 2

    def test_from_the_policy(self, fake_claude: FakeClaude) -> None:
        rbac = RBAC(
            {"allowed_org_ids": [ORG_A], "roles": {"user": {"models": ["claude-haiku-*"]}}},
            api_key=PROD,
            base_url=fake_claude.url,
        )
        rbac.client(Principal("u", "user")).messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
        assert fake_claude.requests[0].headers["anthropic-allowed-org-ids"] == ORG_A

    @pytest.mark.parametrize(
        "ids",
        [["not-a-uuid"], [], "11111111-1111-4111-8111-111111111111", [42], ["{11111111-1111-4111-8111-111111111111}"]],
    )
    def test_ids_are_validated(self, ids: Any) -> None:
        with pytest.raises(PolicyError, match="allowed_org_ids"):
            Policy.from_dict({"allowed_org_ids": ids})
        if isinstance(ids, list):
            with pytest.raises(PolicyError):
                RBAC({}, api_key=PROD, allowed_org_ids=ids)

    def test_an_upstream_violation_becomes_access_denied(self, span_exporter: InMemorySpanExporter) -> None:
        with FakeClaude(org_id=ORG_B) as fake:
            rbac = RBAC(
                {"roles": {"user": {"models": ["claude-haiku-*"]}}},
                api_key=PROD,
                base_url=fake.url,
                allowed_org_ids=[ORG_A],
            )
            with pytest.raises(AccessDenied) as info:
                rbac.client(Principal("u", "user")).messages.create(
                    model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES
                )
            assert fake.count() == 1  # never retried
        assert info.value.reason == "tenant_restriction_violation"
        assert info.value.to_dict() == TENANT_ERROR
        (call,) = [s for s in span_exporter.get_finished_spans() if s.name == "anthropic.messages.create"]
        assert dict(call.attributes or {})["claude_rbac.tenant_restriction_violation"] is True

    def test_the_checker_for_proxies(self) -> None:
        assert tenant_violation(None, ORG_A) is None
        assert tenant_violation(f"{ORG_B},{ORG_A}", ORG_A) is None
        assert tenant_violation(ORG_B, ORG_A) == TENANT_ERROR
        assert tenant_violation("garbage", ORG_A) == TENANT_ERROR
        assert tenant_violation(f"{ORG_A}, ", ORG_A) == TENANT_ERROR
        assert json.dumps(TENANT_ERROR, separators=(",", ":")) == (
            '{"type":"error","error":{"type":"permission_error","message":"Access restricted by network policy. '
            'Contact IT Administrator.","error_code":"tenant_restriction_violation"}}'
        )
        assert format_org_ids([ORG_A, ORG_A, ORG_B]) == f"{ORG_A},{ORG_B}"
