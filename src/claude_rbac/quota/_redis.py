"""The buckets on Redis: one ``EVALSHA`` of our own script (``buckets.lua``) per governed call.

The script applies the settlements queued in this process, then checks every bucket of the call and takes
from all of them or none: one round trip, atomic across the call's buckets, nothing to undo after a refusal.
Keys are our own, with the window in the name (``…/tpm/<minute>``, ``…/budget/day/<date>``); the
connection is the one ``limits`` built from the URI (``storage.get_connection()``, ``prefixed_key``), so
every URI it accepts works: single node, sentinel and cluster.

A Redis Cluster places keys by hash tag: a principal's buckets share one tag and a role pool's another,
and redis-py refuses ``EVALSHA`` in a cluster pipeline. There each tag is its own script call, in order: one
round trip for a call without pool limits, two with them; a refusal by a later tag after an earlier one
admitted costs one more call to give that back (between the two, the earlier hit is visible).

A ``NOSCRIPT`` reply (a restarted server, a failover) loads the script and retries once.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from typing import Any

from ._buckets import MINUTE, Bucket
from ._engine import WIDTH_MS, Check, Settlement, State, Verdict, checks_for, ttl
from ._script_calls import AsyncScriptCaller, ScriptCaller, pack

__all__ = ["AsyncRedisBuckets", "RedisBuckets", "SCRIPT", "is_cluster"]

SCRIPT = resources.files(__package__).joinpath("buckets.lua").read_text(encoding="utf-8")
SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()
Clock = Callable[[], float]
Call = tuple[list[str], list[str]]


def is_cluster(client: Any) -> bool:
    return "Cluster" in type(client).__name__


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_noscript(exc: BaseException) -> bool:
    return type(exc).__name__ == "NoScriptError" or str(exc).startswith("NOSCRIPT")


class _Plan:
    """One operation's script calls: the checks and settlements of each hash tag, encoded, and the answer."""

    def __init__(
        self,
        prefixed: Callable[[str], str],
        now: float,
        checks: Sequence[Check],
        settlements: Sequence[Settlement],
        *,
        take: bool,
        split: bool,
    ) -> None:
        self.now, self.checks, self.take = now, list(checks), take
        self._prefixed = prefixed
        groups: dict[str, tuple[list[int], list[Settlement]]] = {}
        for index, check in enumerate(checks):
            groups.setdefault(check.bucket.group if split else "", ([], []))[0].append(index)
        for owed in settlements:
            groups.setdefault(owed.group if split else "", ([], []))[1].append(owed)
        self.groups = list(groups.values())
        self.states: list[State] = [State(0)] * len(checks)
        self.refused: int | None = None
        self.admitted_groups: list[list[int]] = []

    def steps(self) -> Iterator[tuple[list[int], list[Settlement]]]:
        """Each hash tag's checks and settlements; after a refusal, only what is owed still goes."""
        for indexes, owed in self.groups:
            sending = indexes if self.refused is None else []
            if sending or owed:
                yield sending, owed

    def call(self, indexes: Sequence[int], settlements: Sequence[Settlement], *, take: bool | None = None) -> Call:
        keys: list[str] = []
        slots: dict[str, int] = {}

        def slot(key: str) -> int:
            if key not in slots:
                keys.append(self._prefixed(key))
                slots[key] = len(keys)
            return slots[key]

        now = self.now
        args: list[Any] = [repr(now), "1" if (self.take if take is None else take) else "0", len(settlements)]
        for owed in settlements:
            if owed.op == "add":
                args += ["add", slot(owed.key), owed.amount, ttl(owed.ends, now)]
            else:
                args += [owed.op, slot(owed.key), abs(owed.amount), owed.entry or "-"]
        args.append(len(indexes))
        for index in indexes:
            check = self.checks[index]
            bucket = check.bucket
            if bucket.strategy == "moving":
                args += ["moving", slot(check.key), bucket.limit, bucket.cost, MINUTE]
            elif bucket.strategy == "sliding":
                args += ["sliding", slot(check.previous), slot(check.key), bucket.limit, bucket.cost]
                args += [ttl(check.ends, now), check.elapsed_ms, WIDTH_MS]
            else:
                args += ["calendar", slot(check.key), bucket.limit, bucket.cost, ttl(check.ends, now)]
        return keys, [" ".join(map(str, args))]

    def read(self, indexes: Sequence[int], reply: Sequence[Any]) -> bool:
        """Record one call's answer; False when it refused."""
        for position, index in enumerate(indexes):
            first, second, third = (_text(value) for value in reply[2 + 3 * position : 5 + 3 * position])
            if self.checks[index].bucket.strategy == "moving":
                oldest, leaving = (float(value) if value else None for value in (second, third))
                self.states[index] = State(int(first), oldest=oldest, leaving=leaving)
            else:
                self.states[index] = State(int(first), int(second))
        if int(reply[0]) == 1:
            if indexes and self.take:
                self.admitted_groups.append(list(indexes))
            return True
        if self.refused is None:
            self.refused = indexes[int(reply[1]) - 1]
        return False

    def undo(self) -> list[Call]:
        """Calls giving back what groups that admitted took, once a later group refused (cluster only)."""
        calls = []
        for indexes in self.admitted_groups:
            owed = []
            for index in indexes:
                check = self.checks[index]
                bucket = check.bucket
                if bucket.strategy == "moving":
                    owed.append(Settlement(bucket.group, check.key, bucket.cost, entry=repr(self.now)))
                elif bucket.cost > 0:
                    owed.append(Settlement(bucket.group, check.key, -bucket.cost))
            calls.append(self.call((), owed, take=False))
        return calls

    def verdict(self) -> Verdict:
        return Verdict(self.refused is None, self.refused, tuple(self.states))


class RedisBuckets:
    """Sync: each operation is one script call (one per hash tag on a cluster).

    On a single node or behind sentinels the call goes through a :class:`~._script_calls.ScriptCaller`
    (parked connections, the command packed here): redis-py's command path costs more CPU than the round trip.
    """

    def __init__(self, storage: Any, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock
        self._caller: ScriptCaller | None = None
        self._lock = threading.Lock()
        self._caller_of: Any = None
        """The client ``_caller`` was made for: limits may build a new client (and pool) after a reset."""

    def run(
        self, buckets: Sequence[Bucket], *, take: bool, settlements: Sequence[Settlement] = ()
    ) -> tuple[float, list[Check], Verdict]:
        client = self._storage.get_connection()
        now = self._clock()
        checks = checks_for(buckets, now)
        plan = _Plan(self._storage.prefixed_key, now, checks, settlements, take=take, split=is_cluster(client))
        for indexes, owed in plan.steps():
            plan.read(indexes, self._eval(client, plan.call(indexes, owed)))
        if plan.refused is not None:
            for keys, args in plan.undo():
                self._eval(client, (keys, args))
        return now, checks, plan.verdict()

    def _eval(self, client: Any, call: Call) -> Any:
        keys, args = call
        caller = self._caller_for(client)
        try:
            if caller is None:
                return client.evalsha(SHA, len(keys), *keys, *args)
            return caller.call(pack(["EVALSHA", SHA, len(keys), *keys, *args]))
        except Exception as exc:
            if not _is_noscript(exc):
                raise
        client.script_load(SCRIPT)
        return client.evalsha(SHA, len(keys), *keys, *args)

    def _caller_for(self, client: Any) -> ScriptCaller | None:
        if client is not self._caller_of:
            with self._lock:
                if client is not self._caller_of:
                    if self._caller is not None:
                        self._caller.close()
                    usable = ScriptCaller.usable(client) and not is_cluster(client)
                    self._caller = ScriptCaller(client) if usable else None
                    self._caller_of = client
        return self._caller

    def close(self) -> None:
        """Give the parked connections back to their pool."""
        if self._caller is not None:
            self._caller.close()


class AsyncRedisBuckets:
    """Async (``redis.asyncio`` through ``limits.aio``'s bridge): the same calls, awaited."""

    def __init__(self, client: Any, prefixed: Callable[[str], str], clock: Clock) -> None:
        self.client = client
        self._prefixed = prefixed
        self._clock = clock
        self._split = is_cluster(client)
        self._caller = AsyncScriptCaller(client) if AsyncScriptCaller.usable(client) and not self._split else None
        self._warming: asyncio.Lock | None = asyncio.Lock()
        """Until the first call has connected: a burst on a new loop would otherwise open the whole pool at
        once, while the loop is busy with the burst, and connections time out. Through this lock the first
        call goes alone and the others follow one per loop turn, reusing what it opened."""

    async def run(
        self, buckets: Sequence[Bucket], *, take: bool, settlements: Sequence[Settlement] = ()
    ) -> tuple[float, list[Check], Verdict]:
        warming = self._warming
        if warming is not None:
            async with warming:
                if self._warming is not None:
                    outcome = await self._run(buckets, take=take, settlements=settlements)
                    self._warming = None
                    return outcome
        return await self._run(buckets, take=take, settlements=settlements)

    async def _run(
        self, buckets: Sequence[Bucket], *, take: bool, settlements: Sequence[Settlement]
    ) -> tuple[float, list[Check], Verdict]:
        now = self._clock()
        checks = checks_for(buckets, now)
        plan = _Plan(self._prefixed, now, checks, settlements, take=take, split=self._split)
        for indexes, owed in plan.steps():
            plan.read(indexes, await self._eval(plan.call(indexes, owed)))
        if plan.refused is not None:
            for call in plan.undo():
                await self._eval(call)
        return now, checks, plan.verdict()

    async def _eval(self, call: Call) -> Any:
        keys, args = call
        try:
            if self._caller is None:
                return await self.client.evalsha(SHA, len(keys), *keys, *args)
            return await self._caller.call(pack(["EVALSHA", SHA, len(keys), *keys, *args]))
        except Exception as exc:
            if not _is_noscript(exc):
                raise
        await self.client.script_load(SCRIPT)
        return await self.client.evalsha(SHA, len(keys), *keys, *args)

    async def close(self) -> None:
        """Give the parked connections back to their pool."""
        if self._caller is not None:
            await self._caller.close()
