"""A plain WSGI app behind ``claude_rbac.integrations.wsgi.RBACMiddleware`` (path rules guard both routes)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any, cast

from werkzeug.test import Client

from claude_rbac import RBAC, RBACError
from claude_rbac.integrations import error_response
from claude_rbac.integrations.wsgi import RBACMiddleware, get_claude

from ..server_spans import WSGIServerSpans
from .common import Reply, answer, bearer, message_args, principal_for, sse

ROUTES = {"/chat": "/chat", "/stream": "/stream"}


def chat_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
    try:
        claude = get_claude(environ)
        if environ["PATH_INFO"] == "/chat":
            payload = json.dumps(answer(claude.messages.create(**message_args(body)))).encode()
            start_response("200 OK", [("content-type", "application/json")])
            return [payload]
        stream = claude.messages.create(**message_args(body), stream=True)
    except RBACError as error:  # a refusal of the governed client, answered with its Anthropic error body
        status, headers, payload = error_response(error)
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [payload]
    start_response("200 OK", [("content-type", "text/event-stream")])
    return relay(stream)


def relay(stream: Any) -> Iterator[bytes]:
    with stream:
        for event in stream:
            if (chunk := sse(event)) is not None:
                yield chunk


class WerkzeugHarness:
    """Drives a WSGI app (plain or Flask) with werkzeug's test client."""

    framework_spans: frozenset[str] = frozenset()

    def __init__(self, framework: str, app: Any, rbac: RBAC, routes: Mapping[str, str]) -> None:
        self.framework = framework
        self.routes = routes
        self.rbac = rbac
        self.client = Client(app)

    def post(self, path: str, who: str | None, body: Mapping[str, Any]) -> Reply:
        response = self.client.post(path, json=dict(body), headers=bearer(who))
        return Reply(response.status_code, response.get_data(), {k.lower(): v for k, v in response.headers.items()})

    def stream_first_chunk(self, path: str, who: str | None, body: Mapping[str, Any]) -> Reply:
        response = self.client.post(path, json=dict(body), headers=bearer(who), buffered=False)
        try:
            first = cast(bytes, next(iter(response.response), b""))
        finally:
            response.close()  # the server closes the body iterator: the generator, then Claude's stream
        return Reply(response.status_code, first, {k.lower(): v for k, v in response.headers.items()})

    def close(self) -> None:
        self.rbac.close()


def build(options: Mapping[str, Any]) -> WerkzeugHarness:
    rbac = RBAC(**options)
    guarded = RBACMiddleware(
        chat_app,
        rbac=rbac,
        principal_loader=lambda environ: principal_for(environ.get("HTTP_AUTHORIZATION")),
        rules={"/chat": "user", "/stream": "user"},
    )
    return WerkzeugHarness("wsgi", WSGIServerSpans(guarded), rbac, ROUTES)
