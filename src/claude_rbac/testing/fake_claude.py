"""FakeClaude: a real HTTP server on 127.0.0.1 that speaks enough of the Messages API to test against.

It answers ``POST /v1/messages`` (JSON, and SSE with the documented event order and usage in
``message_delta``), ``/v1/messages/count_tokens`` and ``/v1/messages/batches`` (create, retrieve,
results, cancel, list), returns Anthropic error bodies on demand, enforces
``anthropic-allowed-org-ids`` when given an ``org_id``, and records every request it receives.

    with FakeClaude() as fake:
        client = anthropic.Anthropic(api_key="test", base_url=fake.url)
        client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=[...])
        assert fake.requests[0].json["max_tokens"] == 50
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeClaude", "RecordedRequest"]

WORDS = ("Hello", "from", "FakeClaude,", "a", "local", "stand-in", "for", "the", "Messages", "API.")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as FakeClaude received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    json: Any
    received_at: float = field(default_factory=time.time)

    @property
    def api_key(self) -> str | None:
        if "x-api-key" in self.headers:
            return self.headers["x-api-key"]
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None


@dataclass
class _Scripted:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def error_body(error_type: str, message: str, error_code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": error_type, "message": message}
    if error_code is not None:
        error["error_code"] = error_code
    return {"type": "error", "error": error}


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_text_of(item) for item in value)
    if isinstance(value, Mapping):
        return " ".join(_text_of(value[key]) for key in ("text", "content") if key in value)
    return ""


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
    ) -> None:
        self.output_tokens = output_tokens
        self.cache_creation_input_tokens = cache_creation_input_tokens
        self.cache_read_input_tokens = cache_read_input_tokens
        self.delay = delay
        self.stream_delay = stream_delay
        self.org_id = org_id
        self.record = record
        self.requests: list[RecordedRequest] = []
        self.aborted_streams = 0
        self._lock = threading.Lock()
        self._script: deque[_Scripted] = deque()
        self._batches: dict[str, dict[str, Any]] = {}
        self._server = _QuietServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
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
        with self._lock:
            for _ in range(times):
                self._script.append(_Scripted(status, error_body(error_type, message, error_code), dict(headers or {})))

    def script_tenant_restriction(self, times: int = 1) -> None:
        """The next requests get the 403 a tenant restriction (``anthropic-allowed-org-ids``) answers with."""
        self.script_error(
            403,
            "permission_error",
            "Access restricted by network policy. Contact IT Administrator.",
            error_code="tenant_restriction_violation",
            times=times,
        )

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._script.clear()
            self._batches.clear()
            self.aborted_streams = 0

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

    def _next_scripted(self) -> _Scripted | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _record(self, request: RecordedRequest) -> None:
        if self.record:
            with self._lock:
                self.requests.append(request)

    def input_tokens(self, body: Mapping[str, Any]) -> int:
        text = _text_of(body.get("system", "")) + " " + _text_of(body.get("messages", []))
        return max(1, math.ceil(len(text.strip()) / 4))

    def message(self, body: Mapping[str, Any]) -> dict[str, Any]:
        max_tokens = int(body.get("max_tokens", 1))
        out = min(max_tokens, self.output_tokens)
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": [{"type": "text", "text": " ".join(WORDS[i % len(WORDS)] for i in range(out))}],
            "stop_reason": "max_tokens" if out == max_tokens else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": self.input_tokens(body),
                "output_tokens": out,
                "cache_creation_input_tokens": self.cache_creation_input_tokens,
                "cache_read_input_tokens": self.cache_read_input_tokens,
            },
        }

    def events(self, body: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        """The SSE events of a streamed message, in the documented order."""
        message = self.message(body)
        usage = message["usage"]
        words = message["content"][0]["text"].split(" ")
        start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
        yield "message_start", {"type": "message_start", "message": start}
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        yield "ping", {"type": "ping"}
        for i, word in enumerate(words):
            text = word if i == 0 else f" {word}"
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": 0}
        yield (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
        yield "message_stop", {"type": "message_stop"}

    def batch(self, body: Mapping[str, Any]) -> dict[str, Any]:
        batch_id = f"msgbatch_{uuid.uuid4().hex[:24]}"
        requests = list(body.get("requests", []))
        batch = {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended",
            "request_counts": {
                "processing": 0,
                "succeeded": len(requests),
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "ended_at": "2026-01-01T00:00:00Z",
            "created_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-01-02T00:00:00Z",
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch_id}/results",
        }
        with self._lock:
            self._batches[batch_id] = {"batch": batch, "requests": requests}
        return batch

    def batch_results(self, batch_id: str) -> list[dict[str, Any]] | None:
        with self._lock:
            stored = self._batches.get(batch_id)
        if stored is None:
            return None
        return [
            {
                "custom_id": item.get("custom_id"),
                "result": {"type": "succeeded", "message": self.message(item.get("params", {}))},
            }
            for item in stored["requests"]
        ]

    def stored_batch(self, batch_id: str) -> dict[str, Any] | None:
        with self._lock:
            stored = self._batches.get(batch_id)
        return None if stored is None else stored["batch"]

    def all_batches(self) -> list[dict[str, Any]]:
        with self._lock:
            return [stored["batch"] for stored in self._batches.values()]

    def tenant_allows(self, headers: Mapping[str, str]) -> bool:
        allowed = headers.get("anthropic-allowed-org-ids")
        if self.org_id is None or allowed is None:
            return True
        return self.org_id in allowed.split(",")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-stream is part of the tests, not an error worth a traceback.
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _handler_for(fake: FakeClaude) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.fake = fake
    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes; don't wait for an ACK
    fake: FakeClaude

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _send_json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _dispatch(self) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        fake._record(RecordedRequest(self.command, parts.path, parse_qs(parts.query), headers, body))
        if fake.delay:
            time.sleep(fake.delay)
        scripted = fake._next_scripted()
        if scripted is not None:
            self._send_json(scripted.status, scripted.body, scripted.headers)
            return
        if not fake.tenant_allows(headers):
            self._send_json(
                403,
                error_body(
                    "permission_error",
                    "Access restricted by network policy. Contact IT Administrator.",
                    "tenant_restriction_violation",
                ),
            )
            return
        self._route(self.command, parts.path, body if isinstance(body, dict) else {})

    def _route(self, method: str, path: str, body: dict[str, Any]) -> None:
        fake = self.fake
        if method == "POST" and path == "/v1/messages":
            if body.get("stream"):
                self._stream(body)
            else:
                self._send_json(200, fake.message(body))
        elif method == "POST" and path == "/v1/messages/count_tokens":
            self._send_json(200, {"input_tokens": fake.input_tokens(body)})
        elif method == "POST" and path == "/v1/messages/batches":
            self._send_json(200, fake.batch(body))
        elif method == "GET" and path == "/v1/messages/batches":
            batches = fake.all_batches()
            self._send_json(
                200,
                {
                    "data": batches,
                    "has_more": False,
                    "first_id": batches[0]["id"] if batches else None,
                    "last_id": batches[-1]["id"] if batches else None,
                },
            )
        elif path.startswith("/v1/messages/batches/"):
            self._batch_item(method, path.removeprefix("/v1/messages/batches/"))
        elif method == "GET" and path == "/v1/models":
            self._send_json(200, {"data": [], "has_more": False, "first_id": None, "last_id": None})
        else:
            self._send_json(404, error_body("not_found_error", f"No such endpoint: {method} {path}"))

    def _batch_item(self, method: str, rest: str) -> None:
        fake = self.fake
        batch_id, _, action = rest.partition("/")
        batch = fake.stored_batch(batch_id)
        if batch is None:
            self._send_json(404, error_body("not_found_error", "No such batch."))
        elif method == "GET" and action == "results":
            lines = "\n".join(json.dumps(line) for line in fake.batch_results(batch_id) or []).encode()
            self.send_response(200)
            self.send_header("content-type", "application/binary")
            self.send_header("content-length", str(len(lines)))
            self.end_headers()
            self.wfile.write(lines)
        elif method == "POST" and action == "cancel":
            self._send_json(200, {**batch, "processing_status": "canceling"})
        elif method == "GET" and not action:
            self._send_json(200, batch)
        else:
            self._send_json(404, error_body("not_found_error", "No such endpoint."))

    def _stream(self, body: dict[str, Any]) -> None:
        fake = self.fake
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
        self.end_headers()
        try:
            for name, data in fake.events(body):
                chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
                if fake.stream_delay:
                    time.sleep(fake.stream_delay)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            with fake._lock:
                fake.aborted_streams += 1
            self.close_connection = True
