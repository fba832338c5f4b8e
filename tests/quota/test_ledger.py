"""The daily spend ledger on memory and on the real Redis: exact integer sums, Decimal reports, one hash per day."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_rbac.policy import dollars_of
from claude_rbac.quota import LedgerRow, SpendLedger, SpendRecorder, SpendReport, StorageFailure
from tests.support.redis import free_port

DAY = dt.datetime.now(dt.timezone.utc).date()
"""Today: Redis expires a day's hash ``ttl_days`` after the day, by the server's real clock."""
NOON = dt.datetime.combine(DAY, dt.time(12), dt.timezone.utc).timestamp()


def ledger_for(storage: str, key_prefix: str, **kwargs: object) -> SpendLedger:
    return SpendLedger(storage, key_prefix=key_prefix, clock=lambda: NOON, **kwargs)  # type: ignore[arg-type]


def test_rows_and_role_totals_in_decimal_dollars(storage: str, key_prefix: str) -> None:
    ledger = ledger_for(storage, key_prefix)
    ledger.record(DAY, "uma", "user", 1_250, 1)
    ledger.record(DAY, "uma", "user", 2_001, 1)
    ledger.record(DAY, "ulf", "user", 400_000, 2)
    ledger.record(DAY, "paul", "power", 3_000_000, 3)
    ledger.record(DAY - dt.timedelta(days=1), "uma", "user", 99, 1)  # another day: not in this report

    report = ledger.report(DAY)

    assert report.rows == (
        LedgerRow("paul", "power", 3_000_000, 3),
        LedgerRow("ulf", "user", 400_000, 2),
        LedgerRow("uma", "user", 3_251, 2),
    )
    assert [row.dollars for row in report.rows] == [Decimal("3"), Decimal("0.4"), Decimal("0.003251")]
    assert [(t.role, t.dollars, t.calls, t.principals) for t in report.roles] == [
        ("power", Decimal("3"), 3, 1),
        ("user", Decimal("0.403251"), 4, 2),
    ]
    assert (report.dollars, report.calls) == (Decimal("3.403251"), 7)
    assert ledger.report(DAY - dt.timedelta(days=1)).rows == (LedgerRow("uma", "user", 99, 1),)
    assert ledger.report() == report  # today, by the ledger's clock
    ledger.close()


def test_an_empty_day(storage: str, key_prefix: str) -> None:
    report = ledger_for(storage, key_prefix).report(DAY)
    assert (report.rows, report.roles, report.dollars, report.calls) == ((), (), Decimal(0), 0)


def test_ids_are_escaped_so_no_two_meet(storage: str, key_prefix: str) -> None:
    ledger = ledger_for(storage, key_prefix)
    ledger.record(DAY, "b/c", "a", 1, 1)
    ledger.record(DAY, "c", "a/b", 2, 1)
    ledger.record(DAY, "x%2Fy", "r", 3, 1)
    ledger.record(DAY, "}{ é", "r", 4, 1)
    assert set(ledger.report(DAY).rows) == {
        LedgerRow("b/c", "a", 1, 1),
        LedgerRow("c", "a/b", 2, 1),
        LedgerRow("x%2Fy", "r", 3, 1),
        LedgerRow("}{ é", "r", 4, 1),
    }


def test_principal_ids_are_mapped_before_they_are_stored(storage: str, key_prefix: str) -> None:
    ledger = ledger_for(storage, key_prefix, principal_id=lambda given: f"pseudo-{len(given)}")
    ledger.record(DAY, "alice", "user", 10, 1)
    assert ledger.report(DAY).rows == (LedgerRow("pseudo-5", "user", 10, 1),)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_amounts_are_whole_and_not_negative(bad: object) -> None:
    ledger = SpendLedger()
    with pytest.raises(ValueError, match="micro_dollars"):
        ledger.record(DAY, "a", "r", bad, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="calls"):
        ledger.record(DAY, "a", "r", 1, bad)  # type: ignore[arg-type]
    assert ledger.report(DAY).rows == ()


def test_a_memory_ledger_forgets_days_past_their_ttl() -> None:
    ledger = SpendLedger(ttl_days=2)
    for back in (3, 2, 0):
        ledger.record(DAY - dt.timedelta(days=back), "uma", "user", 1, 1)
    assert ledger.report(DAY - dt.timedelta(days=3)).rows == ()
    assert ledger.report(DAY - dt.timedelta(days=2)).rows == (LedgerRow("uma", "user", 1, 1),)


def test_ttl_days_is_validated() -> None:
    with pytest.raises(ValueError, match="ttl_days"):
        SpendLedger(ttl_days=0)


def test_concurrent_records_sum_exactly(storage: str, key_prefix: str) -> None:
    ledger = ledger_for(storage, key_prefix)
    start = threading.Barrier(8)

    def write(worker: int) -> None:
        start.wait()
        for n in range(25):
            ledger.record(DAY, f"u{worker % 2}", "user", 1_000 + n, 1)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    each = 4 * sum(1_000 + n for n in range(25))
    assert set(ledger.report(DAY).rows) == {LedgerRow("u0", "user", each, 100), LedgerRow("u1", "user", each, 100)}


def test_on_redis_one_hash_per_day_with_a_hash_tag_and_an_expiry(redis_url: str, key_prefix: str) -> None:
    ledger = ledger_for(redis_url, key_prefix, ttl_days=30)
    ledger.record(DAY, "uma", "user", 7, 1)
    client = redis.Redis.from_url(redis_url)
    (key,) = client.keys(f"*{key_prefix}*")
    assert key.decode().endswith(f"{{{key_prefix}/ledger/{DAY.isoformat()}}}")
    assert client.hgetall(key) == {b"m/user/uma": b"7", b"c/user/uma": b"1"}
    kept_until = dt.datetime.combine(DAY, dt.time(), dt.timezone.utc) + dt.timedelta(days=31)
    assert client.expiretime(key) == int(kept_until.timestamp())
    ledger.close()


def test_another_process_reads_what_one_wrote(redis_url: str, key_prefix: str) -> None:
    writer = ledger_for(redis_url, key_prefix)
    assert isinstance(writer, SpendRecorder)  # the quota's settlement hook
    writer.record(DAY, "uma", "user", 5, 1)
    reader = SpendLedger(redis_url, key_prefix=key_prefix)  # what the CLI builds
    assert reader.report(DAY).rows == (LedgerRow("uma", "user", 5, 1),)
    writer.close()
    writer.record(DAY, "uma", "user", 5, 1)  # a closed ledger connects again
    assert reader.report(DAY).rows == (LedgerRow("uma", "user", 10, 2),)
    assert SpendLedger(redis_url, key_prefix=key_prefix + "x").report(DAY).rows == ()  # another app's prefix
    reader.close()
    writer.close()


def test_a_memory_ledger_is_its_own_table() -> None:
    ledger = SpendLedger(clock=lambda: NOON)
    ledger.record(DAY, "uma", "user", 5, 1)
    assert ledger.report().rows == (LedgerRow("uma", "user", 5, 1),)
    assert SpendLedger().report(DAY).rows == ()  # another process (or ledger) does not see it


def test_a_down_redis_is_a_storage_failure_naming_no_address() -> None:
    ledger = SpendLedger(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StorageFailure) as caught:
        ledger.record(DAY, "uma", "user", 5, 1)
    with pytest.raises(StorageFailure):
        ledger.report(DAY)
    assert "127.0.0.1" not in str(caught.value)


def test_as_dict_keeps_dollars_exact() -> None:
    report = SpendReport.of(DAY, [LedgerRow("a", "user", 1, 1), LedgerRow("b", "admin", 10_000_001, 2)])
    data = report.as_dict()
    assert data["dollars"] == "10.000002"
    assert data["rows"][0] == {
        "principal": "b",
        "role": "admin",
        "dollars": "10.000001",
        "micro_dollars": 10_000_001,
        "calls": 2,
    }
    assert data["roles"][1] == {"role": "user", "dollars": "0.000001", "micro_dollars": 1, "calls": 1, "principals": 1}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c/d"]), st.sampled_from(["user", "power"]), st.integers(0, 10**9)),
        max_size=30,
    )
)
def test_reports_are_the_exact_sums_of_what_was_recorded(records: list[tuple[str, str, int]]) -> None:
    ledger = SpendLedger()
    for principal, role, micro in records:
        ledger.record(DAY, principal, role, micro, 1)
    report = ledger.report(DAY)
    assert report.micro_dollars == sum(micro for *_, micro in records)
    assert report.dollars == sum((dollars_of(micro) for *_, micro in records), Decimal(0))
    assert sum(total.micro_dollars for total in report.roles) == report.micro_dollars
    assert report.calls == len(records)
    assert [row.micro_dollars for row in report.rows] == sorted(
        (row.micro_dollars for row in report.rows), reverse=True
    )
