"""What keeps a governed client out of reference cycles, so dropping it frees it at once (issue #19).

With more active users than the client cache holds, every request gets a new governed client, used once and
dropped. The SDK's client sits in two kinds of cycle, which only the garbage collector frees: every such
client (and its governor, middleware chain, resources...) then waits for a collection, and the collections
come several times as often as for a plain client, each walking what waits. Both are broken here, with the
SDK's behaviour kept:

* The middleware chain (``_build_middleware_chain()``, stored on the client) is closures over ``self``. It is
  built over a ``weakref.proxy`` instead: the chain is only ever run by a client that holds it, so the proxy
  is alive whenever it is used. A traced call's own chain (built per call, never stored) keeps ``self``.
* Resources (``messages``, ``beta``, ``with_raw_response``...) are ``cached_property`` s in the client's
  ``__dict__``, and each holds the client (``_client`` and six bound methods). A governed client instead
  keeps them in slots of its own, and builds them over its *engine*: a second instance of the same class
  that shares the client's ``__dict__`` (the same options, middleware, HTTP pool, lazily set state) but
  not its slots. The client holds its resources and its engine; a resource holds the engine, the engine
  holds nothing back. A resource kept after its client is dropped still works (its engine is the client's
  state), and ``client.messages`` is still one object for the client's lifetime, settable and deletable.
  What differs: ``client.messages._client`` is the engine, not ``client`` (an equal client, not the same
  object), and ``vars(client)`` does not list the resources.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from functools import cached_property
from typing import Any, Final, TypeVar

__all__ = ["build_chain", "lazy_resource", "resource_names"]

_ENGINE: Final = "_engine"
_T = TypeVar("_T")


def resource_names(cls: type) -> tuple[str, ...]:
    """The client class's ``cached_property`` names (its resources), which a governed client keeps in slots."""
    names = {name for klass in cls.__mro__ for name, value in vars(klass).items() if isinstance(value, cached_property)}
    return tuple(sorted(names))


def engine_of(client: Any) -> Any:
    """The instance the client's resources and middleware chain are built over (see the module's docstring).

    Made on first use: an instance of the client's class sharing its ``__dict__``, held in the client's slot.
    An engine is its own engine (its slot says ``None``: it does not hold itself); resources it is asked for
    form a cycle with it, as a plain SDK client's do, but only code reaching for ``resource._client`` gets one.
    """
    try:
        engine = object.__getattribute__(client, _ENGINE)
    except AttributeError:
        engine = object.__new__(type(client))
        engine.__dict__ = client.__dict__
        object.__setattr__(engine, _ENGINE, None)
        object.__setattr__(client, _ENGINE, engine)
        return engine
    return client if engine is None else engine


def lazy_resource(client: Any, name: str, sdk_class: type) -> Any:
    """``client.<name>`` the first time it is read: the SDK's resource over the engine, kept in the client's slot."""
    prop = getattr(sdk_class, name, None)
    if not isinstance(prop, cached_property):
        raise AttributeError(f"{type(client).__name__!r} object has no attribute {name!r}", name=name, obj=client)
    value = prop.func(engine_of(client))
    try:
        return object.__getattribute__(client, name)  # another thread's, set meanwhile: one resource per client
    except AttributeError:
        object.__setattr__(client, name, value)
        return value


def build_chain(client: Any, build: Callable[[Any, Any], _T], call: Any) -> _T:
    """The SDK's ``_build_middleware_chain`` (``build``): the stored chain over a proxy of the engine.

    A traced call's chain (``call`` given) is built per call and never stored: over the client itself.
    """
    if call is not None:
        return build(client, call)
    return build(weakref.proxy(engine_of(client)), None)
