"""The ``revoked=`` source: fingerprints of keys that must never be sent, asked within a time bound.

``RBAC(revoked=...)`` takes a collection of fingerprints (read live on every call, so a set the app
updates applies at once) or a callable that returns one (a revocation service, a database query). The
callable is asked at most once per ``ttl`` seconds (its answer is cached; default 1 s), in a thread of its
own, never on the event loop, and only one question is in flight at a time. A call waits for the answer at
most ``timeout`` seconds (default 1 s): a source that hangs, raises or answers with anything but a
collection of fingerprint strings fails closed (the governor answers 503 ``backend_unavailable``), and
when a hang ends, its answer serves the calls that come after it, never the one that timed out.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import Future
from typing import Final

from ._keys import is_revoked

__all__ = [
    "DEFAULT_REVOCATION_TIMEOUT",
    "DEFAULT_REVOCATION_TTL",
    "RevocationList",
    "RevocationSource",
    "check_revocation_bounds",
]

RevocationSource = Collection[str] | Callable[[], Collection[str]]
DEFAULT_REVOCATION_TIMEOUT: Final = 1.0
DEFAULT_REVOCATION_TTL: Final = 1.0


def check_revocation_bounds(timeout: object, ttl: object) -> None:
    """``ValueError`` unless ``timeout`` is a positive number of seconds and ``ttl`` zero or more."""
    if not _seconds(timeout) or timeout <= 0:  # type: ignore[operator]
        raise ValueError(f"revoked_timeout must be a positive number of seconds, got {type(timeout).__name__}")
    if not _seconds(ttl) or ttl < 0:  # type: ignore[operator]
        raise ValueError(f"revoked_ttl must be 0 or more seconds, got {type(ttl).__name__}")


def _seconds(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _fingerprints(answer: object, what: str) -> Collection[str]:
    """``answer`` if it is a collection of strings; ``TypeError`` (the caller fails closed) otherwise."""
    if isinstance(answer, (str, bytes)) or not isinstance(answer, Collection) or isinstance(answer, Iterator):
        raise TypeError(f"{what} must be a collection of key fingerprints (a set, list or tuple of strings)")
    if isinstance(answer, Mapping):
        answer = answer.keys()
    if not all(isinstance(item, str) for item in answer):
        raise TypeError(f"{what} must hold only fingerprint strings")
    return answer


class RevocationList:
    """Answers "is this key revoked?" from the ``revoked=`` source, within ``timeout``, failing closed."""

    def __init__(
        self,
        source: RevocationSource,
        *,
        timeout: float = DEFAULT_REVOCATION_TIMEOUT,
        ttl: float = DEFAULT_REVOCATION_TTL,
    ) -> None:
        check_revocation_bounds(timeout, ttl)
        if callable(source):
            if inspect.iscoroutinefunction(source):
                raise TypeError("revoked= takes a plain function; it runs in a thread, so it need not be async")
            self._ask: Callable[[], object] | None = source
            self._fixed: Collection[str] = ()
        else:
            self._ask = None
            self._fixed = _fingerprints(source, "revoked=")
        self.timeout = timeout
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, frozenset[str]] | None = None
        self._pending: Future[frozenset[str]] | None = None

    # -- answering ------------------------------------------------------------------------------------

    def revoked(self, key_id: str) -> bool:
        """Whether ``key_id`` is revoked; raises (time-out, bad answer, the source's error) to fail closed."""
        fixed = self._answer_now()
        if fixed is not None:
            return is_revoked(key_id, fixed)
        return is_revoked(key_id, self._pending_answer().result(timeout=self.timeout))

    async def arevoked(self, key_id: str) -> bool:
        """:meth:`revoked` for async code: the source runs in its thread while the event loop waits."""
        fixed = self._answer_now()
        if fixed is not None:
            return is_revoked(key_id, fixed)
        waiting = asyncio.shield(asyncio.wrap_future(self._pending_answer()))
        try:
            return is_revoked(key_id, await asyncio.wait_for(waiting, self.timeout))
        except asyncio.TimeoutError:
            raise TimeoutError(f"the revocation source did not answer within {self.timeout} s") from None

    def _answer_now(self) -> Iterable[str] | None:
        """The answer without waiting: the fixed collection (read live) or a fresh cached one; else ``None``."""
        if self._ask is None:
            return _fingerprints(self._fixed, "revoked=")
        cached = self._cached
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1]
        return None

    def _pending_answer(self) -> Future[frozenset[str]]:
        """The question in flight, or a new one in a daemon thread (a hung source must not block exit)."""
        with self._lock:
            if self._pending is not None and not self._pending.done():
                return self._pending
            future: Future[frozenset[str]] = Future()
            self._pending = future
        threading.Thread(target=self._run, args=(future,), name="claude_rbac-revoked", daemon=True).start()
        return future

    def _run(self, future: Future[frozenset[str]]) -> None:
        assert self._ask is not None
        try:
            answer = frozenset(_fingerprints(self._ask(), "the revocation source's answer"))
        except BaseException as exc:
            future.set_exception(exc)
            return
        if self.ttl > 0:
            self._cached = (time.monotonic() + self.ttl, answer)
        future.set_result(answer)
