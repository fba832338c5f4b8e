"""Governed clients: genuine anthropic clients, derived from one root per kind, that stay governed.

Constructing an anthropic client costs about 18 ms here, so there is one root client per kind (sync,
async), built on first use, and each governed client is ``root.with_options(middleware=[Governor])``
cached per (principal, route scope, route). A miss (an app with more active users than the cache holds)
clones a private template derivation and puts the principal's Governor in its middleware, a few
microseconds instead of the ~50 µs of ``with_options()``'s full constructor. The root holds no key: the
:class:`~._governor.Governor` sets the workspace's key, URL and tenant header on each request, so a key
rotation, a policy reload or a workspace change applies to clients already handed out.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final, Literal, overload

import anthropic
import httpx2
from anthropic import MiddlewareInput, NotGiven, not_given
from opentelemetry import trace

from .._loops import Opened, PerLoop
from ..errors import error_for
from ..policy import BETA_HEADER, ORG_IDS_HEADER, WORKSPACE_HEADER, Principal, Scope, redact
from ._acyclic import build_chain, lazy_resource, resource_names
from ._attempt import Binding
from ._enforcer import Enforcer
from ._governor import Governor
from ._memo import ThrashAwareMemo

__all__ = ["ClientFactory", "GovernedAnthropic", "GovernedAsyncAnthropic"]

PLACEHOLDER_KEY: Final = "governed-by-claude-rbac"
"""What a governed client's ``api_key`` reads: the real key is added per request by its governor."""
_CACHE_SIZE: Final = 1024
_FIXED: Final = ("base_url", "api_key", "auth_token", "credentials", "config", "profile", "http_client")
"""What a derived client may not change: where requests go, whose credentials they carry, what sends them
(an ``http_client`` of the caller's could read the key off every request or send it anywhere)."""
_CLIENT_OPTIONS: Final = frozenset(inspect.signature(anthropic.Anthropic.__init__).parameters) - {"self"}
_CREDENTIAL_HEADERS: Final = frozenset({"x-api-key", "authorization"})
_PER_CALL_HEADERS: Final = frozenset({BETA_HEADER, WORKSPACE_HEADER})
"""Headers the policy decides per call (betas, the workspace): a client-wide default would be sent unseen."""


def _check_default_headers(headers: Mapping[str, Any] | None) -> None:
    names = {name.lower() for name in headers or {} if isinstance(name, str)}
    if names & _PER_CALL_HEADERS:
        raise TypeError(
            "a governed client's betas and workspace are decided per call: pass betas=... or workspace_id=... "
            "to each call, not in default_headers"
        )


class _LongRequestTimeout(anthropic.Timeout):
    """The SDK's default timeout (10 minutes, 5 s to connect) that is never ``==`` to the SDK's default.

    The SDK refuses a non-streaming call with a large ``max_tokens`` (``ValueError``, before any
    middleware runs) only while the client's timeout equals its default. Governed clients use this
    equal-valued stand-in so the refusal happens in the governor instead, after the role's clamp: a
    ``max_tokens`` the clamp brings down passes, and one it cannot becomes a 400 that says to stream.
    """

    def __init__(self) -> None:
        super().__init__(anthropic.DEFAULT_TIMEOUT)

    def __eq__(self, other: object) -> bool:
        return other is self

    __hash__ = object.__hash__


def _governed_options(middleware: Sequence[MiddlewareInput], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``copy()``'s arguments, such that the copy keeps the governor (last, nearest the wire) and its host."""
    extra = kwargs.get("_extra_kwargs") or {}
    changed = [name for name in _FIXED if kwargs.get(name) not in (None, not_given) or name in extra]
    if "middleware" in extra:
        changed.append("middleware")
    if changed:
        raise TypeError(
            f"a governed client's {', '.join(changed)} come(s) from its workspace in the policy: "
            "set them there (or in RBAC(...)), not on the client"
        )
    for option in ("default_headers", "set_default_headers"):
        names = {name.lower() for name in kwargs.get(option) or {}}
        if ORG_IDS_HEADER in names:
            message = f"The {ORG_IDS_HEADER} header is set by the policy; a governed client may not change it."
            raise error_for("tenant_restriction_violation", message)
        if names & _CREDENTIAL_HEADERS:
            raise TypeError("a governed client's credentials come from its workspace in the policy, not its headers")
        _check_default_headers(kwargs.get(option))
    governors = [entry for entry in middleware if isinstance(entry, Governor)]
    chosen = kwargs.get("middleware", not_given)
    if governors and not isinstance(chosen, NotGiven):
        kwargs["middleware"] = [*(entry for entry in chosen or () if not isinstance(entry, Governor)), governors[-1]]
    return kwargs


class GovernedAnthropic(anthropic.Anthropic):
    """A genuine ``anthropic.Anthropic`` whose ``with_options()``/``copy()`` keep its governor and host.

    Freed by reference counting when dropped (no cycle waits for the collector): see :mod:`._acyclic`.
    """

    __slots__ = ("_engine", *resource_names(anthropic.Anthropic))

    if not TYPE_CHECKING:  # to a type checker, the resources are the SDK's attributes, and nothing else is

        def __getattr__(self, name: str) -> Any:
            return lazy_resource(self, name, anthropic.Anthropic)

    def _build_middleware_chain(self, call: Any = None) -> Any:
        return build_chain(self, anthropic.Anthropic._build_middleware_chain, call)

    @property
    def user_agent(self) -> str:
        return f"Anthropic/Python {anthropic.__version__}"

    def copy(self, **kwargs: Any) -> GovernedAnthropic:
        return super().copy(**_governed_options(self.middleware, kwargs))

    with_options = copy


class GovernedAsyncAnthropic(anthropic.AsyncAnthropic):
    """A genuine ``anthropic.AsyncAnthropic`` whose ``with_options()``/``copy()`` keep its governor and host.

    Freed by reference counting when dropped (no cycle waits for the collector): see :mod:`._acyclic`.
    """

    __slots__ = ("_engine", *resource_names(anthropic.AsyncAnthropic))

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            return lazy_resource(self, name, anthropic.AsyncAnthropic)

    def _build_middleware_chain(self, call: Any = None) -> Any:
        return build_chain(self, anthropic.AsyncAnthropic._build_middleware_chain, call)

    @property
    def user_agent(self) -> str:
        return f"AsyncAnthropic/Python {anthropic.__version__}"

    def copy(self, **kwargs: Any) -> GovernedAsyncAnthropic:
        return super().copy(**_governed_options(self.middleware, kwargs))

    with_options = copy


class ClientFactory:
    """Hands out governed clients for an :class:`~._enforcer.Enforcer`: one root per kind, cached derivations."""

    def __init__(
        self,
        enforcer: Enforcer,
        *,
        base_url: str | None = None,
        client_options: Mapping[str, Any] | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self._enforcer = enforcer
        self._base_url = base_url
        self._options = dict(client_options or {})
        unknown = [name for name in self._options if name not in _CLIENT_OPTIONS]
        if unknown:
            shown = ", ".join(redact(name) for name in unknown)
            raise TypeError(f"client_options takes anthropic.Anthropic() keyword arguments; not {shown}")
        _check_default_headers(self._options.get("default_headers"))
        self._tracer_provider = tracer_provider
        self._lock = threading.Lock()
        self._roots: dict[bool, GovernedAnthropic | GovernedAsyncAnthropic] = {}
        self._derived: ThrashAwareMemo[tuple[Any, ...], GovernedAnthropic | GovernedAsyncAnthropic]
        self._derived = ThrashAwareMemo(_CACHE_SIZE)
        self._templates: dict[int, _Template] = {}
        """Per root (by id, the root kept alongside): a derivation never handed out, the shape clones copy."""
        # An asyncio connection belongs to the loop that opened it: inside a running loop, async clients get a
        # root whose HTTP pool is that loop's, closed when the loop shuts down (Django's async views under WSGI
        # run every request in a loop of its own). An app that brings its own http_client keeps it.
        self._ssl: ssl.SSLContext | None = None
        self._loop_roots: PerLoop[GovernedAsyncAnthropic] | None = (
            None if "http_client" in self._options else PerLoop(self._open_loop_root)
        )

    @property
    def checks_long_requests(self) -> bool:
        """False when the app set its own timeout: the SDK then skips its long-request check, and so do we."""
        return "timeout" not in self._options

    @overload
    def get(
        self, principal: Principal | None, scope: Scope, route: str | None, *, asynchronous: Literal[False]
    ) -> GovernedAnthropic: ...

    @overload
    def get(
        self, principal: Principal | None, scope: Scope, route: str | None, *, asynchronous: Literal[True]
    ) -> GovernedAsyncAnthropic: ...

    def get(self, principal: Principal | None, scope: Scope, route: str | None, *, asynchronous: bool) -> Any:
        loop = _running_loop() if asynchronous and self._loop_roots is not None else None
        cache_key = (principal, scope, route, asynchronous, loop)
        derived = self._derived.get(cache_key)  # no lock on the hot path
        if derived is not None:
            return derived
        root = self._root(asynchronous) if loop is None or self._loop_roots is None else self._loop_roots.get_now()
        entry = self._templates.get(id(root))
        if entry is not None and entry.root is not root:
            entry = None  # a dead root's, under a reused id
        base_url = entry.base_url if entry is not None else str(root.base_url)
        governor = Governor(self._enforcer, Binding(principal, scope, route), default_base_url=base_url)
        derived = self._derive(root, entry, governor)
        with self._lock:  # with more active users than it holds, the cache keeps only clients seen twice
            self._derived.put(cache_key, derived)
        return derived

    def _derive(self, root: Any, entry: _Template | None, governor: Governor) -> Any:
        """``root.with_options(middleware=[*root.middleware, governor])``, by cloning ``root``'s template derivation
        (``entry``; made here, from this governor, when the root has none yet)."""
        if entry is None:
            template = root.with_options(middleware=[*root.middleware, governor])
            if not _clonable(template, governor):
                return template  # an SDK whose clients are laid out otherwise: the full constructor, always
            _ = template._tracer  # resolved once here, shared by the clones (else one tracer object per client)
            entry = _Template.of(root, template)
            with self._lock:
                self._templates[id(root)] = entry  # replaces a dead root's under a reused id
        return entry.clone(governor)

    def _root(self, asynchronous: bool) -> GovernedAnthropic | GovernedAsyncAnthropic:
        root = self._roots.get(asynchronous)
        if root is not None:
            return root
        options: dict[str, Any] = {"timeout": _LongRequestTimeout(), **self._options}
        cls = GovernedAsyncAnthropic if asynchronous else GovernedAnthropic
        built = cls(api_key=PLACEHOLDER_KEY, base_url=self._base_url, **options)
        if self._tracer_provider is not None:
            built = built.with_options(
                open_telemetry={**built.open_telemetry, "tracer_provider": self._tracer_provider}
            )
        with self._lock:
            return self._roots.setdefault(asynchronous, built)

    def _open_loop_root(self) -> Opened[GovernedAsyncAnthropic]:
        """The running loop's async root: the template's options over an HTTP pool of this loop's own."""
        loop = asyncio.get_running_loop()
        if self._ssl is None:
            self._ssl = httpx2.create_ssl_context()  # the costly part of an HTTP client, built once and shared
        template = self._root(True)
        assert isinstance(template, GovernedAsyncAnthropic)
        http = anthropic.DefaultAsyncHttpxClient(verify=self._ssl)
        # The base class's copy(): the governed one refuses an http_client, which only this factory may set.
        root = anthropic.AsyncAnthropic.copy(template, http_client=http)
        assert isinstance(root, GovernedAsyncAnthropic)

        async def close() -> None:
            with self._lock:
                self._derived.retain(lambda key: key[4] is not loop)
                self._templates.pop(id(root), None)
            await http.aclose()

        return Opened(root, close)

    def close(self) -> None:
        """Close the sync root (governed clients share its connection pool)."""
        for root in self._drop(asynchronous=False):
            root.close()

    async def aclose(self) -> None:
        """Close the async roots: the running loop's and the loop-less one; call it before the event loop ends."""
        if self._loop_roots is not None:
            await self._loop_roots.aclose()
        for root in self._drop(asynchronous=True):
            await root.close()

    def _drop(self, *, asynchronous: bool) -> list[Any]:
        with self._lock:
            root = self._roots.pop(asynchronous, None)
            self._derived.retain(lambda key: key[3] is not asynchronous)
            if root is not None:
                self._templates.pop(id(root), None)
        return [root] if root is not None else []


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


_LAYOUT: Final = frozenset({"_middleware", "_middleware_chain"})


def _clonable(template: Any, governor: Governor) -> bool:
    """Whether ``template`` is laid out as :meth:`_Template.clone` expects: its governor last in ``_middleware``, a
    prebuilt ``_middleware_chain`` (the SDK builds both in its constructor and never changes them), no lazy resource
    yet."""
    state = vars(template)
    return (
        state.keys() >= _LAYOUT
        and isinstance(state["_middleware"], tuple)
        and state["_middleware"][-1:] == (governor,)
        and callable(getattr(template, "_build_middleware_chain", None))
        and not state.keys() & _lazy_names(type(template))
    )


def _lazy_names(cls: type) -> frozenset[str]:
    """The client's ``cached_property`` names (its resources: ``messages``, ``beta``...), bound to one instance."""
    names = _LAZY.get(cls)
    if names is None:
        names = _LAZY[cls] = frozenset(
            name for klass in cls.__mro__ for name, value in vars(klass).items() if isinstance(value, cached_property)
        )
    return names


_LAZY: dict[type, frozenset[str]] = {}


@dataclass(frozen=True, slots=True)
class _Template:
    """A root's template derivation, and what each clone of it copies, read once: the template is never handed
    out, so nothing changes it after :meth:`of` (a new principal at 100,000 active users clones one per call)."""

    root: Any
    template: Any
    base_url: str
    state: dict[str, Any]
    """The template's attributes but its bound resources (it has none: it is never handed out)."""
    dicts: tuple[str, ...]
    """The attributes holding dicts, copied for each clone."""

    @classmethod
    def of(cls, root: Any, template: Any) -> _Template:
        lazy = _lazy_names(type(template))
        state = {name: value for name, value in vars(template).items() if name not in lazy}
        dicts = tuple(name for name, value in state.items() if type(value) is dict)
        return cls(root, template, str(root.base_url), state, dicts)

    def clone(self, governor: Governor) -> Any:
        """A client equal to the template but for its governor: the same options, HTTP pool and timeout, its own
        middleware chain. Mutable option dicts are copied, so no two clients share one a caller could change
        through the other."""
        template = self.template
        client = object.__new__(type(template))
        attributes = client.__dict__
        attributes.update(self.state)
        for name in self.dicts:
            attributes[name] = dict(attributes[name])
        client._middleware = (*template._middleware[:-1], governor)
        client._middleware_chain = client._build_middleware_chain()
        return client
