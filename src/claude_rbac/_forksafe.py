"""Locks that survive ``fork()``: a worker forked while another thread held one must not inherit it held.

An object registers itself; around every fork each registered object's ``_lock`` is taken (so no
half-done update is copied), released in the parent, and replaced in the child, which then runs the
object's ``_after_fork_in_child()`` if it has one (the settlement queue empties itself there: the parent
sends what it queued). Each ``_lock`` guards one object and waits for nothing else, so taking them all
cannot deadlock.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

__all__ = ["register"]

_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()
_HELD_ACROSS_FORK: list[Any] = []


def register(obj: Any) -> None:
    """Keep ``obj._lock`` (a ``threading.Lock``) consistent across forks, for as long as ``obj`` lives."""
    _LIVE.add(obj)


def _before_fork() -> None:
    held = list(_LIVE)
    for obj in held:
        obj._lock.acquire()
    _HELD_ACROSS_FORK[:] = held


def _after_fork_in_parent() -> None:
    for obj in _HELD_ACROSS_FORK:
        obj._lock.release()
    _HELD_ACROSS_FORK.clear()


def _after_fork_in_child() -> None:
    for obj in _HELD_ACROSS_FORK:
        obj._lock = threading.Lock()
        reset = getattr(obj, "_after_fork_in_child", None)
        if reset is not None:
            reset()
    _HELD_ACROSS_FORK.clear()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
