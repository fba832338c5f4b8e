"""FakeClaude: a real HTTP server on 127.0.0.1 that speaks enough of the Messages API to test against.

It answers ``POST /v1/messages`` (JSON, and SSE with the documented event order and usage split
between ``message_start`` and the final ``message_delta``), ``/v1/messages/count_tokens`` and
``/v1/messages/batches`` (create, retrieve, results, cancel, list), returns Anthropic error bodies
on demand, enforces ``anthropic-allowed-org-ids`` when given an ``org_id``, and records every
request it receives. It accepts every request field (tools of any type, ``mcp_servers``,
``service_tier``, ``speed``, ``inference_geo``, betas, ``container``, ``context_management``,
``cache_control``...) and rejects none.

    with FakeClaude() as fake:
        client = anthropic.Anthropic(api_key="test", base_url=fake.url)
        client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=[...])
        assert fake.requests[0].json["max_tokens"] == 50

Usage. Each answered message (a JSON answer, a stream, one batch item) carries the usage of the
first of these that applies; 2 to 4 replace the computed usage key by key, and a key set to
``None`` is left out:

1. ``script_error`` / ``script_tenant_restriction``: an error answer, which consumes no usage;
2. for a batch item, ``script_batch_outcome(custom_id, "errored")`` (or ``expired``, ``canceled``): its
   result carries no message and no usage; else the next usage scripted with
   ``script_usage(..., custom_id=<its custom_id>)``;
3. the next usage of the ``script_usage(...)`` queue (first in, first out);
4. the ``usage=`` given to the constructor: a mapping, or a callable that gets the request JSON
   (a batch item's ``params``) and returns a mapping, or ``None`` to pass;
5. the computed usage: the prompt estimate (one token per 4 characters of text and tool
   definitions) split by the simulated prompt cache (blocks with ``cache_control`` are written at
   their TTL the first time a prefix is seen and read afterwards), or by the fixed
   ``cache_creation_input_tokens``/``cache_read_input_tokens`` when either is set; ``output_tokens``
   capped by ``max_tokens``; ``server_tool_use`` for web search/fetch tools; ``service_tier``
   (``batch`` in batches, ``priority`` for ``auto`` when ``priority=True``); ``inference_geo`` and
   ``speed`` echoed; beta ``iterations`` when the advisor tool is granted.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeAlias

from ..tenant import tenant_violation
from ._fake_answers import message_body, stream_events
from ._fake_batches import BatchOutcome, BatchStore, batch_outcome
from ._fake_server import RecordedRequest, ScriptedError, error_body, make_server
from ._fake_usage import CacheUse, PromptCache, apply_override, computed_usage, prompt_tokens, service_tier

__all__ = ["FakeClaude", "RecordedRequest", "UsageSource"]

UsageSource: TypeAlias = Mapping[str, Any] | Callable[[Mapping[str, Any]], Mapping[str, Any] | None]
"""What ``FakeClaude(usage=...)`` takes: a usage for every answer, or a function of the request JSON."""


class FakeClaude:
    """A local Messages API. Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        output_tokens: int = 10,
        cache_creation_input_tokens: int = 0,
        cache_read_input_tokens: int = 0,
        delay: float = 0.0,
        stream_delay: float = 0.0,
        org_id: str | None = None,
        record: bool = True,
        usage: UsageSource | None = None,
        priority: bool = False,
    ) -> None:
        self.output_tokens = output_tokens
        self.cache_creation_input_tokens = cache_creation_input_tokens
        self.cache_read_input_tokens = cache_read_input_tokens
        self.delay = delay
        self.stream_delay = stream_delay
        self.org_id = org_id
        self.record = record
        self.usage = usage
        self.priority = priority
        self.requests: list[RecordedRequest] = []
        self.aborted_streams = 0
        self.prompt_cache = PromptCache()
        self._lock = threading.Lock()
        self._script: deque[ScriptedError] = deque()
        self._usages: deque[Mapping[str, Any]] = deque()
        self._item_usages: dict[str, deque[Mapping[str, Any]]] = {}
        self._item_outcomes: dict[str, BatchOutcome] = {}
        self._batches = BatchStore()
        self._server = make_server(self, host, port)
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeClaude:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="FakeClaude", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeClaude:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting and inspection ------------------------------------------------------------------

    def script_error(
        self,
        status: int,
        error_type: str,
        message: str = "Scripted error.",
        *,
        error_code: str | None = None,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Make the next ``times`` requests answer with this Anthropic error (e.g. 529 ``overloaded_error``)."""
        body = error_body(error_type, message, error_code)
        with self._lock:
            self._script.extend(ScriptedError(status, body, dict(headers or {})) for _ in range(times))

    def script_tenant_restriction(self, times: int = 1) -> None:
        """The next requests get the 403 a tenant restriction (``anthropic-allowed-org-ids``) answers with."""
        self.script_error(
            403,
            "permission_error",
            "Access restricted by network policy. Contact IT Administrator.",
            error_code="tenant_restriction_violation",
            times=times,
        )

    def script_usage(self, usage: Mapping[str, Any], *, times: int = 1, custom_id: str | None = None) -> None:
        """The next ``times`` answered messages carry ``usage`` (in place of the computed keys it names).

        With ``custom_id``, only batch items with that ``custom_id`` take it, before the shared queue.
        """
        with self._lock:
            queue = self._usages if custom_id is None else self._item_usages.setdefault(custom_id, deque())
            queue.extend(dict(usage) for _ in range(times))

    def script_batch_outcome(self, custom_id: str, outcome: BatchOutcome = "errored") -> None:
        """The next batch item with this ``custom_id`` ends ``errored`` (an ``invalid_request_error``),
        ``expired`` or ``canceled`` instead of succeeding: no message, no usage (Anthropic bills none)."""
        if outcome not in ("errored", "expired", "canceled"):
            raise ValueError(f"a batch item ends errored, expired or canceled, not {outcome!r}")
        with self._lock:
            self._item_outcomes[custom_id] = outcome

    def reset(self) -> None:
        """Forget the request log, every script, the batches and the prompt cache."""
        with self._lock:
            self.requests.clear()
            self._script.clear()
            self._usages.clear()
            self._item_usages.clear()
            self._item_outcomes.clear()
            self.aborted_streams = 0
        self._batches.clear()
        self.prompt_cache.clear()

    def calls(self, path: str = "/v1/messages", method: str = "POST") -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path and r.method == method]

    def count(self, path: str = "/v1/messages", method: str = "POST") -> int:
        return len(self.calls(path, method))

    @property
    def api_keys_seen(self) -> list[str | None]:
        with self._lock:
            return [r.api_key for r in self.requests]

    # -- the API -----------------------------------------------------------------------------------

    def input_tokens(self, body: Mapping[str, Any]) -> int:
        """The whole prompt's estimated tokens, cached or not (what ``count_tokens`` answers)."""
        return prompt_tokens(body)

    def usage_for(
        self, body: Mapping[str, Any], *, batch: bool = False, custom_id: str | None = None
    ) -> dict[str, Any]:
        """The usage the next answer to ``body`` carries; this consumes a scripted usage and uses the cache."""
        fixed = self.cache_creation_input_tokens or self.cache_read_input_tokens
        if fixed:
            cache = CacheUse(read=self.cache_read_input_tokens, write_5m=self.cache_creation_input_tokens)
        else:
            cache = self.prompt_cache.use(body, prompt_tokens(body))
        tier = service_tier(body, batch=batch, priority=self.priority)
        usage = computed_usage(body, cache, output_tokens=self.output_tokens, tier=tier, cache_is_extra=bool(fixed))
        override = self._next_usage(custom_id)
        if override is None and self.usage is not None:
            override = self.usage if isinstance(self.usage, Mapping) else self.usage(body)
        return usage if override is None else apply_override(usage, override)

    def message(self, body: Mapping[str, Any], usage: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The JSON answer to ``body`` (with :meth:`usage_for` when no ``usage`` is given)."""
        return message_body(body, self.usage_for(body) if usage is None else usage)

    def events(
        self, body: Mapping[str, Any], usage: Mapping[str, Any] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The SSE events of a streamed answer to ``body``, in the documented order."""
        return stream_events(self.message(body, usage))

    def batch(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a batch: every item is answered now, with ``service_tier: "batch"`` in its usage."""

        def answer(params: Mapping[str, Any], custom_id: str | None) -> dict[str, Any]:
            with self._lock:
                outcome = self._item_outcomes.pop(custom_id, None) if custom_id is not None else None
            if outcome is not None:
                return batch_outcome(outcome)
            message = message_body(params, self.usage_for(params, batch=True, custom_id=custom_id))
            return {"type": "succeeded", "message": message}

        return self._batches.create(body, self.url, answer)

    def batch_results(self, batch_id: str) -> list[dict[str, Any]] | None:
        return self._batches.results(batch_id)

    def stored_batch(self, batch_id: str) -> dict[str, Any] | None:
        return self._batches.get(batch_id)

    def all_batches(self) -> list[dict[str, Any]]:
        return self._batches.all()

    def tenant_error(self, headers: Mapping[str, str]) -> dict[str, Any] | None:
        """The 403 body for a request whose ``anthropic-allowed-org-ids`` excludes :attr:`org_id`, else ``None``."""
        if self.org_id is None:
            return None
        return tenant_violation(headers.get("anthropic-allowed-org-ids"), self.org_id)

    def tenant_allows(self, headers: Mapping[str, str]) -> bool:
        return self.tenant_error(headers) is None

    # -- used by the server ------------------------------------------------------------------------

    def _next_usage(self, custom_id: str | None) -> Mapping[str, Any] | None:
        with self._lock:
            for queue in (self._item_usages.get(custom_id) if custom_id is not None else None, self._usages):
                if queue:
                    return queue.popleft()
        return None

    def _next_scripted(self) -> ScriptedError | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _record(self, request: RecordedRequest) -> None:
        if self.record:
            with self._lock:
                self.requests.append(request)

    def _stream_aborted(self) -> None:
        with self._lock:
            self.aborted_streams += 1
