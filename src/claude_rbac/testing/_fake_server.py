"""FakeClaude's HTTP plumbing: the threaded server, the request log entry, routing, JSON and SSE bodies."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from .fake_claude import FakeClaude

__all__ = ["RecordedRequest", "ScriptedError", "error_body", "make_server"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as FakeClaude received it: headers lower-cased, the JSON body parsed (or ``None``)."""

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

    @property
    def betas(self) -> list[str]:
        """The ``anthropic-beta`` header's features (the SDK's ``betas=`` argument), in order."""
        value = self.headers.get("anthropic-beta", "")
        return [beta.strip() for beta in value.split(",") if beta.strip()]

    @property
    def workspace_id(self) -> str | None:
        """The ``anthropic-workspace-id`` header (the SDK's ``workspace_id=`` argument travels there)."""
        return self.headers.get("anthropic-workspace-id")


@dataclass(frozen=True)
class ScriptedError:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def error_body(error_type: str, message: str, error_code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": error_type, "message": message}
    if error_code is not None:
        error["error_code"] = error_code
    return {"type": "error", "error": error}


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-stream is part of the tests, not an error worth a traceback.
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def make_server(fake: FakeClaude, host: str, port: int) -> ThreadingHTTPServer:
    """A server bound to ``(host, port)`` (port 0 picks a free one) that answers as ``fake`` says."""

    class Handler(_Handler):
        pass

    Handler.fake = fake
    return _QuietServer((host, port), Handler)


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
        refusal = fake.tenant_error(headers)
        if refusal is not None:
            self._send_json(403, refusal)
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
            first, last = (batches[0]["id"], batches[-1]["id"]) if batches else (None, None)
            self._send_json(200, {"data": batches, "has_more": False, "first_id": first, "last_id": last})
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
        events = fake.events(body)  # the usage is settled before the first byte goes out
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
        self.end_headers()
        try:
            for name, data in events:
                chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
                if fake.stream_delay:
                    time.sleep(fake.stream_delay)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            fake._stream_aborted()
            self.close_connection = True
