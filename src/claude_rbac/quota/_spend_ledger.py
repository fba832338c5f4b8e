"""The daily spend ledger: what each principal and each role spent on each UTC day, and in how many calls.

It is the :class:`~._ledger.SpendRecorder` an :class:`~claude_rbac.RBAC` gives its quota by default: written
off the request path once a call's exact cost is known (the quota's ledger queue calls :meth:`record_many`), and
read by ``claude-rbac spend`` and by admin pages. It is a report, not a limit: the spend buckets refuse
calls; the ledger says afterwards who spent what.

Storage (the RBAC's URI, on connections of the ledger's own: a ledger write never holds a connection a
request waits for):

* ``memory://``: a table in this process (the RBAC's own; another process cannot read it).
* Redis: one hash per UTC day, ``{<prefix>/ledger/<YYYY-MM-DD>}`` under the storage's key prefix. Two
  fields per (role, principal): ``m/<role>/<principal>`` (micro-dollars) and ``c/<role>/<principal>``
  (calls), each id escaped so no id can reach into another's field. A write is one script call per day
  for all the rows the quota's ledger queue drained (:meth:`record_many`; up to ``ROWS_PER_CALL`` rows, so
  no script holds Redis for long): every ``HINCRBY`` and the key's expiry (``ttl_days`` after the day
  ends, 400 by default), atomically. The whole day lives on one Redis Cluster slot (its hash tag), so a
  write is one round trip and a read is one ``HGETALL``.

Amounts are integer micro-dollars in storage and :class:`~decimal.Decimal` dollars in reports; no float
is ever summed. Principal ids are stored as the recorder gives them: an RBAC built with
``audit_user_id="hashed"`` records the same keyed pseudonym its audit trail carries, and with ``"off"``
no principal at all (per-role rows only; see ``docs/spend-ledger.md``).

A failed write raises :class:`~claude_rbac.quota.StorageFailure` and is not retried: an ``HINCRBY``
whose outcome is unknown (a timeout) could count twice if sent again, so the ledger may under-report an
outage's calls, never over-report them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final
from urllib.parse import quote, unquote

from ..policy import dollars_of
from ._ledger import LedgerRow
from ._quota import StorageFailure
from ._storage import build_storage, connections_of, options_for, scheme_of

__all__ = ["DAY_TTL", "ROWS_PER_CALL", "LedgerRow", "RoleTotal", "SpendLedger", "SpendReport"]

DAY_TTL: Final = 400
"""Days a day's ledger is kept after it ends (on Redis by its expiry; on memory until a later day is recorded)."""

ROWS_PER_CALL: Final = 5_000
"""Rows one script call writes at most: Redis runs nothing else while a script runs (2 ``HINCRBY`` a row)."""

# KEYS[1]: the day's hash. ARGV[1]: its expiry (unix seconds); then per row its field's tail
# (<role>/<principal>, escaped), micro-dollars and calls.
_SCRIPT: Final = """
for i = 2, #ARGV, 3 do
  redis.call('HINCRBY', KEYS[1], 'm/' .. ARGV[i], ARGV[i + 1])
  redis.call('HINCRBY', KEYS[1], 'c/' .. ARGV[i], ARGV[i + 2])
end
redis.call('EXPIREAT', KEYS[1], ARGV[1])
return 1
"""
_SHA: Final = hashlib.sha1(_SCRIPT.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class RoleTotal:
    """What every principal of one role spent on one day."""

    role: str
    micro_dollars: int
    calls: int
    principals: int

    @property
    def dollars(self) -> Decimal:
        return dollars_of(self.micro_dollars)


@dataclass(frozen=True, slots=True)
class SpendReport:
    """One UTC day of the ledger: rows by dollars, largest first (ties by role, then principal)."""

    day: dt.date
    rows: tuple[LedgerRow, ...]

    @classmethod
    def of(cls, day: dt.date, rows: Iterable[LedgerRow]) -> SpendReport:
        return cls(day, tuple(sorted(rows, key=lambda row: (-row.micro_dollars, row.role, row.principal))))

    @property
    def roles(self) -> tuple[RoleTotal, ...]:
        """Per-role totals, largest first: integer sums of the rows, never float."""
        totals: dict[str, list[int]] = {}
        for row in self.rows:
            total = totals.setdefault(row.role, [0, 0, 0])
            total[0] += row.micro_dollars
            total[1] += row.calls
            total[2] += 1 if row.principal else 0
        found = (RoleTotal(role, micro, calls, principals) for role, (micro, calls, principals) in totals.items())
        return tuple(sorted(found, key=lambda total: (-total.micro_dollars, total.role)))

    @property
    def micro_dollars(self) -> int:
        return sum(row.micro_dollars for row in self.rows)

    @property
    def dollars(self) -> Decimal:
        return dollars_of(self.micro_dollars)

    @property
    def calls(self) -> int:
        return sum(row.calls for row in self.rows)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: dollars as exact decimal strings beside the integer micro-dollars."""
        return {
            "day": self.day.isoformat(),
            "dollars": str(self.dollars),
            "micro_dollars": self.micro_dollars,
            "calls": self.calls,
            "rows": [
                {
                    "principal": row.principal,
                    "role": row.role,
                    "dollars": str(row.dollars),
                    "micro_dollars": row.micro_dollars,
                    "calls": row.calls,
                }
                for row in self.rows
            ],
            "roles": [
                {
                    "role": total.role,
                    "dollars": str(total.dollars),
                    "micro_dollars": total.micro_dollars,
                    "calls": total.calls,
                    "principals": total.principals,
                }
                for total in self.roles
            ],
        }


def _escape(value: str) -> str:
    return quote(value, safe="")


def _tail(role: str, principal: str) -> str:
    """A row's field name after its ``m/`` or ``c/``."""
    return f"{_escape(role)}/{_escape(principal)}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse(fields: dict[Any, Any]) -> list[LedgerRow]:
    """A day's hash as rows; a field of another shape (written by hand?) is skipped, never guessed at."""
    counts: dict[tuple[str, str], list[int]] = {}
    for name, value in fields.items():
        kind, _, rest = _text(name).partition("/")
        role, sep, principal = rest.partition("/")
        if kind not in ("m", "c") or not sep:
            continue
        try:
            amount = int(_text(value))
        except ValueError:
            continue
        counts.setdefault((unquote(role), unquote(principal)), [0, 0])[0 if kind == "m" else 1] = amount
    return [LedgerRow(principal, role, micro, calls) for (role, principal), (micro, calls) in counts.items()]


def _today(clock: Callable[[], float]) -> dt.date:
    return dt.datetime.fromtimestamp(clock(), dt.timezone.utc).date()


class SpendLedger:
    """The daily spend ledger on one storage: :meth:`record` a settled call, read a :meth:`report` of a day.

    ``SpendLedger("redis://...", key_prefix=...)``: the URI and key prefix of the RBAC whose calls it records
    (the RBAC builds its own; the CLI builds one to read). ``principal_id`` maps the id a recorder gives
    before it is stored (an RBAC passes its audit trail's, see ``audit_user_id``); ``None`` keeps ids as given.
    ``clock`` says what "today" is for :meth:`report` (the day of a record is the recorder's).
    """

    def __init__(
        self,
        storage: str = "memory://",
        *,
        key_prefix: str = "claude_rbac",
        storage_options: dict[str, Any] | None = None,
        ttl_days: int = DAY_TTL,
        principal_id: Callable[[str], str] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if isinstance(ttl_days, bool) or not isinstance(ttl_days, int) or ttl_days < 1:
            raise ValueError(f"ttl_days must be a whole number of days >= 1, got {ttl_days!r}")
        self.uri = storage
        self.key_prefix = key_prefix
        self.ttl_days = ttl_days
        self.is_memory = scheme_of(storage) == "memory"
        self._principal_id = principal_id
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self._days: dict[dt.date, dict[tuple[str, str], list[int]]] = {}
        self._storage: Any = None
        if not self.is_memory:
            self._storage = build_storage(storage, options_for(storage, storage_options))

    def __repr__(self) -> str:
        return f"<SpendLedger storage={scheme_of(self.uri)}:// ttl_days={self.ttl_days}>"

    def today(self) -> dt.date:
        """Today's UTC date, by this ledger's clock."""
        return _today(self._clock)

    def key(self, day: dt.date) -> str:
        """The Redis key of ``day``'s hash (without the storage's own prefix)."""
        return f"{{{_escape(self.key_prefix)}/ledger/{day.isoformat()}}}"

    # -- writing ------------------------------------------------------------------------------------

    def record(self, day: dt.date, principal: str, role: str, micro_dollars: int, calls: int) -> None:
        """Add one settled amount: ``micro_dollars`` and ``calls`` to ``principal`` under ``role`` on ``day``."""
        self.record_many(day, (LedgerRow(principal, role, micro_dollars, calls),))

    def record_many(self, day: dt.date, rows: Sequence[LedgerRow]) -> None:
        """Add each row's micro-dollars and calls to its principal under its role on ``day``.

        On Redis one script call (so one round trip) per ``ROWS_PER_CALL`` rows. Every row is checked
        before any is written: a bad one raises ``ValueError`` and nothing is recorded. A call that fails
        raises :class:`StorageFailure`; the calls before it (past ``ROWS_PER_CALL`` rows) stay written."""
        for row in rows:
            for name, value in (("micro_dollars", row.micro_dollars), ("calls", row.calls)):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        mapped = self._principal_id
        stored = [(row.role, mapped(row.principal) if mapped else row.principal, row) for row in rows]
        if not stored:
            return
        if self._storage is None:
            with self._lock:
                if day not in self._days:  # a new day: forget those past their ttl, as Redis would
                    oldest = day - dt.timedelta(days=self.ttl_days)
                    for old in [held for held in self._days if held < oldest]:
                        del self._days[old]
                held = self._days.setdefault(day, {})
                for role, principal, row in stored:
                    counts = held.setdefault((role, principal), [0, 0])
                    counts[0] += row.micro_dollars
                    counts[1] += row.calls
            return
        expires = dt.datetime.combine(day + dt.timedelta(days=1 + self.ttl_days), dt.time(), dt.timezone.utc)
        key = self._storage.prefixed_key(self.key(day))
        for start in range(0, len(stored), ROWS_PER_CALL):
            args: list[str | int] = [int(expires.timestamp())]
            for role, principal, row in stored[start : start + ROWS_PER_CALL]:
                args += (_tail(role, principal), row.micro_dollars, row.calls)
            self._write(key, args)

    def _write(self, key: str, args: list[str | int]) -> None:
        """One script call, never retried once sent: only a ``NOSCRIPT`` (nothing ran) is sent again."""
        try:
            client = self._storage.get_connection()
            try:
                client.evalsha(_SHA, 1, key, *args)
            except Exception as exc:
                if type(exc).__name__ != "NoScriptError" and not str(exc).startswith("NOSCRIPT"):
                    raise
                client.script_load(_SCRIPT)
                client.evalsha(_SHA, 1, key, *args)
        except Exception as exc:
            raise StorageFailure.of(exc) from None

    # -- reading ------------------------------------------------------------------------------------

    def report(self, day: dt.date | None = None) -> SpendReport:
        """``day``'s rows (today, UTC, by default) and their totals by role, in Decimal dollars."""
        chosen = day if day is not None else self.today()
        if self._storage is None:
            with self._lock:
                held = dict(self._days.get(chosen, {}))
            rows = [LedgerRow(principal, role, micro, calls) for (role, principal), (micro, calls) in held.items()]
            return SpendReport.of(chosen, rows)
        try:
            fields = self._storage.get_connection().hgetall(self._storage.prefixed_key(self.key(chosen)))
        except Exception as exc:
            raise StorageFailure.of(exc) from None
        return SpendReport.of(chosen, _parse(fields))

    def close(self) -> None:
        """Close the ledger's connections (a later call opens them again)."""
        if self._storage is not None:
            for connection in connections_of(self._storage):
                connection.close()
