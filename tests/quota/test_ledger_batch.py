"""A drain's rows in one write: the ledger queue hands a batch recorder each UTC day's rows at once, and
:class:`SpendLedger` writes them in one script call (one round trip, counted through a TCP proxy) with the same
figures as one write per row. A recorder of the app's own with only ``record()`` gets one call per row."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence

import pytest
import redis

from claude_rbac import BatchSpendRecorder, SpendRecorder
from claude_rbac.quota import ROWS_PER_CALL, LedgerRow, SpendLedger
from claude_rbac.quota._ledger import LedgerQueue
from tests.support.redis import RedisServer, free_port
from tests.support.tcp_proxy import TcpProxy

DAY = dt.datetime.now(dt.timezone.utc).date()
"""Today: Redis expires a day's hash ``ttl_days`` after the day, by the server's real clock."""
NEXT = DAY + dt.timedelta(days=1)


class RecordOnly:
    """An app's own recorder: ``record()`` only, writing each row through to a ledger."""

    def __init__(self, ledger: SpendLedger) -> None:
        self.ledger = ledger
        self.calls = 0

    def record(self, day: dt.date, principal: str, role: str, micro_dollars: int, calls: int) -> None:
        self.calls += 1
        self.ledger.record(day, principal, role, micro_dollars, calls)


@pytest.fixture(scope="module")
def proxy() -> Iterator[TcpProxy]:
    with RedisServer() as server, TcpProxy("127.0.0.1", server.port) as running:
        yield running


def _settle(queue: LedgerQueue, day: dt.date, principals: int) -> None:
    """Each principal settles two calls of different costs (one a power user's too)."""
    for n in range(principals):
        queue.put(day, f"u{n:03}", "user", 1_000 + n)
        queue.put(day, f"u{n:03}", "user", 7)
        if n % 50 == 0:
            queue.put(day, f"u{n:03}", "power", 30_000)


def _queues(url: str, prefix: str) -> tuple[LedgerQueue, SpendLedger, LedgerQueue, RecordOnly]:
    batched = SpendLedger(url, key_prefix=prefix + "-batched")
    per_row = RecordOnly(SpendLedger(url, key_prefix=prefix + "-per-row"))
    # max_age of an hour: the drain thread never wakes on its own, only flush() hands rows over
    queues = (LedgerQueue(batched, inline=False, max_age=3600), LedgerQueue(per_row, inline=False, max_age=3600))
    for ledger in (batched, per_row.ledger):
        ledger.record(DAY - dt.timedelta(days=1), "warm", "user", 1, 1)  # connects and loads the script
    return queues[0], batched, queues[1], per_row


def test_the_ledger_is_a_batch_recorder_and_an_apps_record_only_one_is_not() -> None:
    assert isinstance(SpendLedger(), BatchSpendRecorder)
    assert isinstance(RecordOnly(SpendLedger()), SpendRecorder)
    assert not isinstance(RecordOnly(SpendLedger()), BatchSpendRecorder)


def test_500_principals_in_one_drain_are_one_round_trip_with_per_row_figures(proxy: TcpProxy, key_prefix: str) -> None:
    queue, batched, per_row_queue, per_row = _queues(proxy.url(), key_prefix)
    _settle(queue, DAY, 500)
    proxy.reset()
    queue.flush()
    assert proxy.round_trips == 1

    _settle(per_row_queue, DAY, 500)
    proxy.reset()
    per_row_queue.flush()
    assert proxy.round_trips == per_row.calls == 510  # the app's record-only recorder: one call per row

    report = batched.report(DAY)
    assert len(report.rows) == 510
    assert report.rows == per_row.ledger.report(DAY).rows
    assert report.rows[0] == LedgerRow("u000", "power", 30_000, 1)
    assert LedgerRow("u499", "user", 1_000 + 499 + 7, 2) in report.rows
    assert (report.micro_dollars, report.calls) == (sum(1_007 + n for n in range(500)) + 10 * 30_000, 1_010)
    for queue_ in (queue, per_row_queue):
        queue_.close()
    batched.close()
    per_row.ledger.close()


def test_a_drain_spanning_midnight_is_one_round_trip_per_day(proxy: TcpProxy, key_prefix: str) -> None:
    queue, batched, per_row_queue, per_row = _queues(proxy.url(), key_prefix)
    for settling in (queue, per_row_queue):
        _settle(settling, DAY, 300)
        _settle(settling, NEXT, 200)
    proxy.reset()
    queue.flush()
    assert proxy.round_trips == 2
    per_row_queue.flush()
    for day, rows in ((DAY, 306), (NEXT, 204)):
        report = batched.report(day)
        assert len(report.rows) == rows
        assert report.rows == per_row.ledger.report(day).rows
    client = redis.Redis.from_url(proxy.url())
    expiries = {day: client.expiretime(f"LIMITS:{batched.key(day)}") for day in (DAY, NEXT)}
    assert expiries[NEXT] - expiries[DAY] == 86_400  # each day's hash keeps its own expiry
    client.close()
    for queue_ in (queue, per_row_queue):
        queue_.close()
    batched.close()
    per_row.ledger.close()


def test_more_rows_than_one_call_takes_and_a_flushed_script_count_once(proxy: TcpProxy, key_prefix: str) -> None:
    ledger = SpendLedger(proxy.url(), key_prefix=key_prefix)
    rows = [LedgerRow(f"p{n}", "user", n, 1) for n in range(ROWS_PER_CALL + 10)]
    ledger.record(DAY, "warm", "user", 0, 0)
    proxy.reset()
    ledger.record_many(DAY, rows)
    assert proxy.round_trips == 2
    redis.Redis.from_url(proxy.url()).script_flush()  # the next call meets NOSCRIPT: it loads and sends again
    ledger.record_many(DAY, rows)
    report = ledger.report(DAY)
    assert {row.principal: (row.micro_dollars, row.calls) for row in report.rows} == {
        "warm": (0, 0),
        **{f"p{n}": (2 * n, 2) for n in range(ROWS_PER_CALL + 10)},
    }
    ledger.close()


def test_batched_and_per_row_writes_sum_the_same(storage: str, key_prefix: str) -> None:
    """Repeated (principal, role) pairs and ids the ledger maps together (as ``audit_user_id="off"`` does)."""
    rows = [LedgerRow(who, role, micro, 1) for who, role, micro in [("a", "u", 5), ("b", "u", 6), ("a", "u", 7)]]
    rows += [LedgerRow("c/d", "p", 10**9, 3), LedgerRow("}{ é", "p", 0, 1)]
    for n, keep in enumerate((str, lambda given: "")):
        batched = SpendLedger(storage, key_prefix=f"{key_prefix}-b{n}", principal_id=keep)
        per_row = SpendLedger(storage, key_prefix=f"{key_prefix}-r{n}", principal_id=keep)
        batched.record_many(DAY, rows)
        for row in rows:
            per_row.record(DAY, row.principal, row.role, row.micro_dollars, row.calls)
        assert batched.report(DAY) == per_row.report(DAY)
        assert batched.report(DAY).calls == 7
        for ledger in (batched, per_row):
            ledger.close()


def test_one_bad_row_and_nothing_of_the_batch_is_written(storage: str, key_prefix: str) -> None:
    ledger = SpendLedger(storage, key_prefix=key_prefix)
    with pytest.raises(ValueError, match="calls"):
        ledger.record_many(DAY, [LedgerRow("a", "u", 5, 1), LedgerRow("b", "u", 5, -1)])
    ledger.record_many(DAY, [])
    assert ledger.report(DAY).rows == ()
    ledger.close()


class FailsOnce:
    """A batch recorder whose first day's write fails: the other day is still written, nothing is retried."""

    def __init__(self) -> None:
        self.got: list[tuple[dt.date, tuple[LedgerRow, ...]]] = []

    def record(self, day: dt.date, principal: str, role: str, micro_dollars: int, calls: int) -> None:
        raise AssertionError("a batch recorder gets record_many")

    def record_many(self, day: dt.date, rows: Sequence[LedgerRow]) -> None:
        self.got.append((day, tuple(rows)))
        if len(self.got) == 1:
            raise TimeoutError


def test_a_failed_day_is_logged_dropped_and_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    recorder = FailsOnce()
    queue = LedgerQueue(recorder, inline=False, max_age=3600)
    _settle(queue, NEXT, 2)
    _settle(queue, DAY, 3)
    with caplog.at_level(logging.WARNING, logger="claude_rbac"):
        queue.flush()
        queue.flush()  # nothing waits: the failed rows are gone
    queue.close()
    assert [(day, len(rows)) for day, rows in recorder.got] == [(DAY, 4), (NEXT, 3)]  # day order
    assert [record.getMessage() for record in caplog.records] == [
        "claude_rbac: the spend recorder failed (TimeoutError); its figures are dropped (4 rows)"
    ]


def test_a_down_redis_drops_the_drain_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    ledger = SpendLedger(f"redis://127.0.0.1:{free_port()}/0")
    queue = LedgerQueue(ledger, inline=False, max_age=3600)
    _settle(queue, DAY, 500)
    with caplog.at_level(logging.WARNING, logger="claude_rbac"):
        queue.close()
    assert [record.getMessage() for record in caplog.records] == [
        "claude_rbac: the spend recorder failed (StorageFailure); its figures are dropped (510 rows)"
    ]


def test_inline_on_memory_a_batch_recorder_gets_each_settlement_at_once() -> None:
    ledger = SpendLedger()
    queue = LedgerQueue(ledger, inline=True, max_age=1)
    queue.put(DAY, "uma", "user", 51)
    assert ledger.report(DAY).rows == (LedgerRow("uma", "user", 51, 1),)
