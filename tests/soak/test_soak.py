"""The soak (issue 9, "Load and faults"): exact limits under a minute of mixed load, through a Redis restart.

The FastAPI example under uvicorn with 4 workers on a private, persistent Redis; 16 clients of every
role for ``CLAUDE_RBAC_SOAK_SECONDS`` (default 60); Redis stopped a third of the way in and started
again a few seconds later (see :mod:`tests.soak.scenario`). One run, several claims, one test each.
With ``CLAUDE_RBAC_SOAK_REPORT=benchmarks/soak.md`` the measurements are written there before anything
is asserted, so a failing run is documented too; by default (``make test``) nothing is written.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from tests.soak.load import percentile
from tests.soak.report import write_section
from tests.soak.scenario import SoakConfig, SoakRun, run

pytestmark = [pytest.mark.slow, pytest.mark.redis]

SECONDS = float(os.environ.get("CLAUDE_RBAC_SOAK_SECONDS", "60"))
REPORT = os.environ.get("CLAUDE_RBAC_SOAK_REPORT", "")
QUICK = 0.5
"""While Redis is down, 99% of guarded requests are refused within this many seconds (storage timeout: 0.25 s)..."""
NO_HANG = 2.0
"""...and every one of them within this many (the clients would wait 10 s)."""


@pytest.fixture(scope="module")
def soak() -> SoakRun:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("redis-server is not installed; the soak needs one of its own (CI=true)")
        pytest.skip("redis-server is not installed")
    measured = run(SoakConfig(seconds=SECONDS))
    if REPORT:
        write_section(Path(REPORT), measured)
    return measured


def test_every_call_at_fakeclaude_answers_a_200_and_every_200_made_one(soak: SoakRun) -> None:
    oks = sorted(r.seq for r in soak.load.results if r.status == 200)
    assert soak.stray_calls == 0
    assert sorted(call.seq for call in soak.calls) == oks  # one to one: no retry, no call without its 200
    assert len(oks) > 0


def test_viewers_are_refused_by_the_route_guard_and_reach_nothing(soak: SoakRun) -> None:
    viewers = [r for r in soak.load.results if r.role == "viewer"]
    assert viewers
    assert {(r.status, r.error_code) for r in viewers} == {(403, "role_insufficient")}
    assert [call for call in soak.calls if soak.roles[call.user] == "viewer"] == []


def test_no_principal_gets_more_calls_than_its_rpm_in_any_60_seconds(soak: SoakRun) -> None:
    assert soak.window_tolerance < 5.0, "FakeClaude saw calls so late that the window check would be loose"
    tallies = soak.tallies()
    assert {p.user: p.busiest for p in tallies if p.busiest > p.rpm} == {}
    assert all(p.reached > 0 for p in tallies if p.role != "viewer")
    # The limits mattered: in every role that may call Claude, someone was refused.
    refused = {p.role for p in tallies if p.refused_requests + p.refused_tokens}
    assert refused == {"user", "power", "admin"}


def test_while_redis_is_down_guarded_calls_get_a_quick_503_and_reach_nothing(soak: SoakRun) -> None:
    during = soak.during_outage()
    assert len(during) > 50
    assert Counter((r.status, r.error_code) for r in during) == {(503, "backend_unavailable"): len(during)}
    latencies = [r.latency for r in during]
    assert percentile(latencies, 99) < QUICK
    assert max(latencies) < NO_HANG
    assert soak.admitted_during_outage() == []


def test_enforcement_resumes_without_restarting_the_app(soak: SoakRun) -> None:
    after = soak.after_recovery()
    statuses = Counter(r.status for r in after)
    assert statuses[200] > 0
    assert statuses[429] > 0
    # The windows from before the restart still count: whoever had filled one was refused until it moved on.
    assert soak.full_at_outage()
    assert soak.readmitted_early() == []
    # Fail closed stays rare once Redis is back: a stray storage timeout on a saturated machine, not an outage.
    assert statuses[503] <= 0.01 * len(after), statuses
    assert set(statuses) <= {200, 429, 503}


def test_the_run_was_bounded_and_every_answer_was_deliberate(soak: SoakRun) -> None:
    results = soak.load.results
    assert len(results) <= soak.config.max_requests
    assert soak.load.seconds < SECONDS + 15
    assert [r for r in results if r.status == 0 or r.error_code in ("incomplete_stream", "unparsable_error_body")] == []
    deliberate = {(200, None), (403, "role_insufficient"), (429, "rate_limited"), (503, "backend_unavailable")}
    assert {(r.status, r.error_code) for r in results} <= deliberate
    assert percentile([r.latency for r in results], 99) < 2.0
