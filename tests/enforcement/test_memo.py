"""The per-principal memos: kept while they serve hits, first sightings dropped while they thrash."""

from __future__ import annotations

from claude_rbac.enforcement._memo import ThrashAwareMemo


def fill(memo: ThrashAwareMemo[str, int], keys: list[str]) -> None:
    for key in keys:
        if memo.get(key) is None:
            memo.put(key, len(key))


def test_a_memo_that_serves_hits_keeps_every_new_key() -> None:
    memo: ThrashAwareMemo[str, int] = ThrashAwareMemo(4)
    for _ in range(3):
        fill(memo, ["a", "bb", "ccc"])
    assert memo.get("bb") == 2
    fill(memo, ["dddd", "eeeee"])  # the fifth key fills it: cleared, and it served more hits than misses
    assert len(memo) == 1
    fill(memo, ["ffffff"])
    assert memo.get("ffffff") == 6  # still keeping first sightings


def test_a_thrashing_memo_keeps_only_keys_seen_before() -> None:
    memo: ThrashAwareMemo[str, int] = ThrashAwareMemo(4)
    fill(memo, [f"user-{n}" for n in range(5)])  # every lookup missed while it filled
    fill(memo, ["once"])
    assert memo.get("once") is None  # a first sighting is not kept
    fill(memo, ["twice", "twice"])
    assert memo.get("twice") == 5  # a second one is


def test_a_thrashing_memo_recovers_when_hits_come_back() -> None:
    memo: ThrashAwareMemo[str, int] = ThrashAwareMemo(2)
    fill(memo, ["a", "b", "c"])  # thrashing
    for key in ["x", "x", "y", "y"]:  # kept on their second sighting, then hit
        fill(memo, [key])
    for _ in range(5):
        fill(memo, ["x", "y"])
    fill(memo, ["z", "z"])  # fills it (x, y, z): more hits than misses this time
    fill(memo, ["new"])
    assert memo.get("new") == 3


def test_retain_drops_what_it_refuses() -> None:
    memo: ThrashAwareMemo[str, int] = ThrashAwareMemo(8)
    fill(memo, ["keep", "drop"])
    memo.retain(lambda key: key != "drop")
    assert (memo.get("keep"), memo.get("drop")) == (4, None)
