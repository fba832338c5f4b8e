"""Building the ``limits`` storages behind a :class:`~claude_rbac.quota.Quota` from a URI.

``memory://`` needs nothing beyond the core install; a Redis URI needs the ``redis`` extra, and this
module imports ``redis`` only when such a URI is used. ``limits`` parses the URI and opens the connections
(single node, sentinel, cluster); the quota's own script runs on them (``_redis.py``).
"""

from __future__ import annotations

import importlib.util
from typing import Any, Final

from limits.errors import ConfigurationError
from limits.storage import storage_from_string

from ..errors import PolicyError, PolicyProblem
from ._memory import LazyMemoryStorage

__all__ = [
    "ASYNC_MAX_CONNECTIONS",
    "ASYNC_POOL_WAIT",
    "REDIS_TIMEOUT",
    "async_storage_uri",
    "build_storage",
    "connections_of",
    "is_redis",
    "scheme_of",
    "options_for",
    "with_blocking_pool",
]

REDIS_TIMEOUT: Final = 0.25
"""Seconds a Redis call may take before the storage counts as down (connect and read)."""
_REDIS_SCHEMES: Final = ("redis", "rediss", "redis+unix", "valkey", "valkeys", "valkey+unix")


def async_storage_uri(uri: str) -> str:
    """The ``limits.aio`` URI for a sync one: ``redis://`` becomes ``async+redis://``."""
    return uri if uri.startswith("async+") else f"async+{uri}"


def scheme_of(uri: str) -> str:
    return uri.split("://", 1)[0].lower()


def _no_retries() -> Any:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


def require_backend(uri: str) -> None:
    """An ``ImportError`` naming the extra to install when ``uri`` needs a package that is not installed."""
    if is_redis(uri) and importlib.util.find_spec("redis") is None:
        raise ImportError("A Redis storage needs redis-py: pip install 'claude-rbac[redis]'", name="redis")


def options_for(uri: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """Bounded timeouts, and redis-py's own retries off: a retried Lua script could count a call twice,
    and ten retries with backoff would stretch the bounded timeout into seconds. Override either in
    ``storage_options``."""
    require_backend(uri)
    merged: dict[str, Any] = {"wrap_exceptions": True}
    scheme = scheme_of(uri).removeprefix("async+")
    if scheme.startswith(("redis", "valkey")):
        merged["retry"] = _no_retries()
    if scheme in _REDIS_SCHEMES or scheme in ("redis+cluster", "valkey+cluster"):
        merged.update(socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
    elif scheme in ("redis+sentinel", "valkey+sentinel"):
        merged.update(socket_timeout=REDIS_TIMEOUT, sentinel_kwargs={"socket_timeout": REDIS_TIMEOUT})
    merged.update(options or {})
    return merged


ASYNC_MAX_CONNECTIONS: Final = 64
ASYNC_POOL_WAIT: Final = 2.0
"""Seconds an async call may wait for a free pooled connection (queueing under a burst, not an outage)."""


def with_blocking_pool(uri: str, options: dict[str, Any]) -> dict[str, Any]:
    """Give a single-node async Redis storage a *blocking* pool.

    redis-py's asyncio pool raises ``MaxConnectionsError`` the moment 100 connections are busy, so a
    burst of concurrent requests in one worker would fail closed although Redis is fine. A blocking
    pool makes the burst wait its turn (up to ``pool_timeout``) on at most ``max_connections`` sockets.
    """
    scheme = scheme_of(uri).removeprefix("async+")
    if scheme not in ("redis", "rediss") or "connection_pool" in options:
        return options
    import redis.asyncio

    options = dict(options)
    max_connections = int(options.pop("max_connections", ASYNC_MAX_CONNECTIONS))
    wait = float(options.pop("pool_timeout", ASYNC_POOL_WAIT))
    connection = {k: options.pop(k) for k in list(options) if k.startswith("socket_") or k == "health_check_interval"}
    options["connection_pool"] = redis.asyncio.BlockingConnectionPool.from_url(
        uri.removeprefix("async+"), max_connections=max_connections, timeout=wait, **connection
    )
    return options


def connections_of(storage: Any) -> list[Any]:
    """The client objects a limits Redis storage (or aio bridge) holds: the data one and any sentinels."""
    if not hasattr(storage, "get_connection"):
        return []
    found = [storage.get_connection()]
    sentinel = getattr(storage, "sentinel", None)
    found.extend(getattr(sentinel, "sentinels", ()) if sentinel is not None else ())
    return found


def is_redis(uri: str) -> bool:
    return scheme_of(uri).removeprefix("async+").startswith(("redis", "valkey"))


def build_storage(uri: str, options: dict[str, Any]) -> Any:
    """The ``limits`` storage for ``uri``. A Redis URI without redis-py is an ``ImportError`` naming the extra;
    a URI ``limits`` cannot use is a :class:`~claude_rbac.PolicyError` naming its scheme (never the URI)."""
    require_backend(uri)
    if scheme_of(uri) == "memory":
        # Our threadless storage, built directly: limits' scheme registry stays untouched for other users.
        return LazyMemoryStorage(uri, **options)
    try:
        return storage_from_string(uri, **options)
    except ConfigurationError as exc:
        # limits' message quotes the URI, which may hold a password: name the scheme only.
        if "unknown storage scheme" in str(exc):
            problem = (
                f"unknown storage scheme {scheme_of(uri)!r}: use memory://, redis://, rediss://, redis+sentinel://..."
            )
        else:
            problem = f"the {scheme_of(uri)}:// storage cannot be set up ({type(exc).__name__})"
        raise PolicyError([PolicyProblem(problem, "storage")]) from None
