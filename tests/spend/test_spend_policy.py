"""Spend limits in the policy: loading and its errors, narrowing by a route, shared pool and workspace windows,
the refusal a principal sees, and a reload that changes them."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from claude_rbac import RBAC, PolicyError, Principal, RateLimited
from claude_rbac.policy import Policy
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-spend-tests-000000000000000000000000000000-SPND"
HAIKU = ["claude-haiku-4-5"]
ALICE, BOB = Principal("alice", "intern"), Principal("bob", "intern")
# Each call: 100 input tokens x $1/M + 100 output x $5/M = $0.0006 reserved and used (FakeClaude answers 100).
PER_CALL = Decimal("0.0006")


def exact(body: Any) -> int:
    return 100


def make(fake: FakeClaude, policy: Any, storage: str = "memory://", key_prefix: str = "spend") -> RBAC:
    return RBAC(policy, storage=storage, key_prefix=key_prefix, api_key=KEY, base_url=fake.url, token_estimator=exact)


def call(rbac: RBAC, who: Principal, **narrowing: Any) -> None:
    rbac.client(who, **narrowing).messages.create(
        model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )


@pytest.fixture
def fake() -> Any:
    with FakeClaude(usage={"input_tokens": 100, "output_tokens": 100}) as running:
        yield running


class TestLoading:
    def test_dollars_become_exact_micro_dollars_from_toml_and_json(self, tmp_path: Path) -> None:
        toml = tmp_path / "p.toml"
        toml.write_text(
            'version = 1\n[roles.intern]\nmodels = ["claude-haiku-4-5"]\nspend = { day = 0.1, month = 40.000001 }\n'
            "pool = { spend = { month = 2000 } }\n"
            '[workspaces.staging]\napi_key = { env = "STAGING_KEY" }\nspend = { month = 200.5 }\n'
        )
        policy = Policy.from_file(toml)
        role = policy.roles["intern"]
        assert (role.spend.day, role.spend.month) == (100_000, 40_000_001)
        assert role.pool_spend.month == 2_000_000_000
        assert role.workspace_spend.month == 200_500_000
        as_json = tmp_path / "p.json"
        as_json.write_text(
            json.dumps({"version": 1, "roles": {"intern": {"models": HAIKU}}}).replace(
                '"models"', '"spend": {"day": 0.30000000000000004}, "models"'
            )
        )
        with pytest.raises(PolicyError, match=r"roles\.intern\.spend\.day: must have at most 6 decimals"):
            Policy.from_file(as_json)  # a float sum's text is refused, not rounded

    @pytest.mark.parametrize(
        ("spend", "message"),
        [
            ({"day": -1}, "must be above $0"),
            ({"day": 0}, "must be above $0"),
            ({"day": float("nan")}, "must be a finite amount"),
            ({"day": 0.0000001}, "at most 6 decimals"),
            ({"day": "2.00"}, "must be an amount in US dollars"),
            ({"week": 2}, "unknown key 'week'"),
            ({}, "must set `day` and/or `month`"),
            (5, "must be a table"),
        ],
    )
    def test_a_bad_dollar_value_names_its_role_and_field(self, spend: Any, message: str) -> None:
        with pytest.raises(PolicyError) as info:
            Policy.from_dict({"roles": {"intern": {"models": HAIKU, "spend": spend}}}, source="rbac.toml")
        assert "rbac.toml" in str(info.value) and "roles.intern.spend" in str(info.value)
        assert message in str(info.value)

    def test_a_role_that_spends_cannot_reach_an_unpriced_model(self) -> None:
        with pytest.raises(PolicyError, match="claude-mythos-preview") as info:
            Policy.from_dict({"roles": {"intern": {"models": ["claude-*"], "pool": {"spend": {"month": 10}}}}})
        assert "roles.intern.models" in str(info.value) and "pool" in str(info.value)
        # Without a spend limit the same role loads; with a price for the model it loads too.
        Policy.from_dict({"roles": {"intern": {"models": ["claude-*"]}}})
        priced = {"input": 20, "output": 100}
        Policy.from_dict(
            {
                "roles": {"intern": {"models": ["claude-mythos-*"], "spend": {"day": 1}}},
                "prices": {"claude-mythos-preview": priced, "claude-mythos-5-2": priced},
            }
        )

    def test_a_workspace_limit_applies_to_its_roles_and_is_checked_too(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("STAGING_KEY", KEY)
        data = {
            "workspaces": {"staging": {"api_key": {"env": "STAGING_KEY"}, "spend": {"month": 200}}},
            "roles": {"intern": {"models": ["claude-*"]}},
        }
        with pytest.raises(PolicyError, match="its workspace's"):
            Policy.from_dict(data)

    def test_spend_is_inherited_and_a_child_may_set_its_own(self) -> None:
        policy = Policy.from_dict(
            {
                "roles": {
                    "intern": {"models": HAIKU, "spend": {"day": 2}},
                    "senior": {"inherits": "intern"},
                    "lead": {"inherits": "intern", "spend": {"day": 20}},
                }
            }
        )
        assert policy.roles["senior"].spend.day == 2_000_000
        assert policy.roles["lead"].spend.day == 20_000_000


class TestEnforcing:
    def test_the_refusal_names_the_limit_and_resets_at_utc_midnight(self, fake: FakeClaude) -> None:
        rbac = make(fake, {"roles": {"intern": {"models": HAIKU, "spend": {"day": 0.0018}}}})
        for _ in range(3):
            call(rbac, ALICE)
        with pytest.raises(RateLimited) as info:
            call(rbac, ALICE)
        error = info.value
        assert error.reason == "spend_limit_exceeded" and error.status_code == 429
        assert "your spend limit for this day (UTC)" in error.message
        now = dt.datetime.now(dt.timezone.utc)
        midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
        assert abs(error.retry_after - (midnight - now).total_seconds()) <= 2
        assert error.to_dict()["error"]["type"] == "rate_limit_error"
        assert error.headers["Retry-After"] == str(error.retry_after)
        assert fake.count() == 3
        (window,) = rbac.spend(ALICE)
        assert (window.used, window.remaining) == (3 * PER_CALL, Decimal(0))
        assert window.resets_at == midnight

    def test_a_route_scope_lowers_the_limit_and_never_raises_it(self, fake: FakeClaude) -> None:
        rbac = make(fake, {"roles": {"intern": {"models": HAIKU, "spend": {"day": 0.0030}}}})
        call(rbac, ALICE, spend={"day": 0.0012})
        call(rbac, ALICE, spend={"day": 0.0012})
        with pytest.raises(RateLimited, match="this route's spend limit"):
            call(rbac, ALICE, spend={"day": 0.0012})
        with pytest.raises(RateLimited, match="your spend limit"):
            for _ in range(5):
                call(rbac, ALICE, spend={"day": 100})  # a route cannot give more than the role's $0.0030
        assert fake.count() == 5
        windows = {w.scope: w for w in rbac.spend(ALICE, scope=rbac.scope(spend={"day": 0.0012}))}
        assert windows["route"].used == 2 * PER_CALL and windows["principal"].used == 5 * PER_CALL

    def test_a_pool_is_shared_by_the_role_s_principals(self, fake: FakeClaude, storage: str, key_prefix: str) -> None:
        policy = {"roles": {"intern": {"models": HAIKU, "pool": {"spend": {"month": 0.0024}}}}}
        rbac = make(fake, policy, storage, key_prefix)
        call(rbac, ALICE)
        call(rbac, BOB)
        call(rbac, ALICE)
        call(rbac, BOB)
        rbac.flush()
        with pytest.raises(RateLimited, match="your role's shared spend limit for this month") as info:
            call(rbac, ALICE)
        assert "0.0024" not in info.value.message  # never the pool's figures
        assert [(w.scope, w.period, w.used) for w in rbac.spend(BOB)] == [("pool", "month", 4 * PER_CALL)]
        rbac.close()

    def test_a_workspace_is_shared_by_its_roles(
        self, fake: FakeClaude, storage: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("STAGING_KEY", KEY)
        policy = {
            "workspaces": {"staging": {"api_key": {"env": "STAGING_KEY"}, "spend": {"day": 0.0012}}},
            "roles": {"intern": {"models": HAIKU}, "other": {"models": HAIKU}},
        }
        rbac = RBAC(policy, storage=storage, key_prefix=key_prefix, base_url=fake.url, token_estimator=exact)
        call(rbac, ALICE)
        call(rbac, Principal("carol", "other"))
        rbac.flush()
        with pytest.raises(RateLimited, match="the workspace's spend limit"):
            call(rbac, BOB)
        assert [(w.scope, w.used) for w in rbac.spend(BOB)] == [("workspace", 2 * PER_CALL)]
        rbac.close()

    def test_a_reload_picks_up_a_new_limit(self, fake: FakeClaude, tmp_path: Path) -> None:
        path = tmp_path / "rbac.toml"
        path.write_text('version = 1\n[roles.intern]\nmodels = ["claude-haiku-4-5"]\nspend = { day = 0.0006 }\n')
        rbac = make(fake, str(path))
        call(rbac, ALICE)
        with pytest.raises(RateLimited):
            call(rbac, ALICE)
        path.write_text('version = 1\n[roles.intern]\nmodels = ["claude-haiku-4-5"]\nspend = { day = 0.0012 }\n')
        rbac.reload_policy()
        call(rbac, ALICE)  # the same window, a higher limit
        (window,) = rbac.spend(ALICE)
        assert (window.limit, window.used) == (Decimal("0.0012"), 2 * PER_CALL)

    def test_a_model_with_no_price_is_refused_before_it_is_sent(self, fake: FakeClaude) -> None:
        rbac = make(fake, {"roles": {"intern": {"models": ["claude-haiku-*"], "spend": {"day": 1}}}})
        with pytest.raises(Exception, match="has no price") as info:
            rbac.client(ALICE).messages.create(
                model="claude-haiku-9", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
        assert getattr(info.value, "reason", None) == "model_not_allowed"
        assert fake.count() == 0
