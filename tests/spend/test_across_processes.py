"""A $1.00 daily spend limit on the real Redis, shared by 4 processes sending 25 concurrent calls each.

The bound, proved here: the settled spend never passes the limit, **zero overshoot**. Each call reserves
its worst case before it is sent, in the same atomic script that checks the limit, so at every admission
(settled costs + reservations in flight + this reservation) <= limit. A call settles at most what it
reserved when its usage is within what was reserved (output <= max_tokens, input <= the estimate, server
tools <= max_uses: true here), and both figures are rounded up to whole micro-dollars the same way, so
rounding cannot push the settled figure above the reservation. The 429 carries Retry-After to the next
UTC midnight.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from claude_rbac import RBAC, Principal, RateLimited
from claude_rbac.testing import FakeClaude

KEY = "sk-ant-api03-spend-tests-000000000000000000000000000000-SPND"
PROCESSES = 4
CONCURRENT = 25
ALICE = Principal("alice", "intern")
POLICY = {"roles": {"intern": {"models": ["claude-haiku-4-5"], "max_tokens": 4000, "spend": {"day": 1.00}}}}
# Reserved per call: 100 input tokens x $1/M + 4,000 output x $5/M = $0.0201; used: 100 in + 3,000 out = $0.0151.
RESERVED = Decimal("0.0201")
COST = Decimal("0.0151")
USAGE = {"input_tokens": 100, "output_tokens": 3000}


def exact(body: Any) -> int:
    return 100


def worker(redis_url: str, key_prefix: str, base_url: str, results: Any) -> None:
    # Four processes of 25 threads, FakeClaude and the test share two cores: a starved thread reads its socket
    # late, so these get 2 s instead of the default 0.25 s (a timed-out give-back is dropped: over-counted).
    storage = f"{redis_url}/0?socket_timeout=2&socket_connect_timeout=2"
    rbac = RBAC(POLICY, storage=storage, key_prefix=key_prefix, api_key=KEY, base_url=base_url, token_estimator=exact)
    client = rbac.client(ALICE)

    def one(_: int) -> tuple[str, float, float]:
        try:
            client.messages.create(
                model="claude-haiku-4-5", max_tokens=4000, messages=[{"role": "user", "content": "hi"}]
            )
            return ("ok", 0.0, 0.0)
        except RateLimited as exc:
            return (exc.reason, float(exc.retry_after), dt.datetime.now(dt.timezone.utc).timestamp())
        except Exception as exc:  # reported, not raised: the parent asserts there is none
            return (f"error {type(exc).__name__}: {exc}", 0.0, 0.0)

    with ThreadPoolExecutor(CONCURRENT) as pool:
        outcomes = list(pool.map(one, range(CONCURRENT)))
    flushed = rbac.flush(10)
    rbac.close()
    results.put([*outcomes, ("flushed", float(flushed), 0.0)])


def test_four_processes_never_spend_more_than_the_daily_limit(redis_url: str, key_prefix: str) -> None:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    with FakeClaude(usage=USAGE) as fake:
        children = [
            context.Process(target=worker, args=(redis_url, key_prefix, fake.url, results)) for _ in range(PROCESSES)
        ]
        for child in children:
            child.start()
        outcomes = [outcome for _ in children for outcome in results.get(timeout=120)]
        flushes = [outcome for outcome in outcomes if outcome[0] == "flushed"]
        outcomes = [outcome for outcome in outcomes if outcome[0] != "flushed"]
        assert flushes == [("flushed", 1.0, 0.0)] * PROCESSES
        for child in children:
            child.join(30)
            assert child.exitcode == 0
        answered = fake.count()
    ok = [o for o in outcomes if o[0] == "ok"]
    refused = [o for o in outcomes if o[0] != "ok"]
    assert len(outcomes) == PROCESSES * CONCURRENT
    assert len(ok) == answered
    # What Anthropic would bill: every answered call at its exact cost. Never above $1.00: zero overshoot.
    assert answered * COST <= Decimal("1.00")
    # At least what fits at once by reservations is admitted (more as settlements give back the difference).
    assert len(ok) >= int(Decimal("1.00") / RESERVED)
    assert refused, "100 calls x $0.0151 is more than $1.00: some must be refused"
    assert {o[0] for o in refused} == {"spend_limit_exceeded"}
    for _, retry_after, when in refused:
        at = dt.datetime.fromtimestamp(when, dt.timezone.utc)
        midnight = dt.datetime.combine(at.date() + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
        assert abs(retry_after - (midnight - at).total_seconds()) <= 2
    rbac = RBAC(POLICY, storage=redis_url, key_prefix=key_prefix, api_key=KEY)
    (window,) = rbac.spend(ALICE)
    assert window.used == answered * COST  # every settlement landed, none lost, none twice
    assert window.used <= window.limit == Decimal("1.00")
    rbac.close()
