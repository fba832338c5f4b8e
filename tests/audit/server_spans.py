"""SERVER spans made the way the OpenTelemetry HTTP instrumentations make them, in a few lines each.

* WSGI (like ``opentelemetry-instrumentation-wsgi``): the span is current while the app runs *and* while
  its body is iterated (a streamed response is produced then), and ends when the body is closed.
* ASGI (like ``opentelemetry-instrumentation-asgi``): current for the whole ``await app(...)``.
* Django (like ``opentelemetry-instrumentation-django``): a middleware, current while the view runs; a
  streamed body is iterated after the span ended, as there.

Only the method, path and status are recorded: these wrappers stand in for an instrumentation, they
are not one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, StatusCode

tracer = trace.get_tracer("tests.audit.server")


def _start(method: str, path: str) -> Span:
    return tracer.start_span(
        f"{method} {path}", kind=SpanKind.SERVER, attributes={"http.request.method": method, "url.path": path}
    )


def _status(span: Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(StatusCode.ERROR)


class WSGIServerSpans:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        span = _start(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"))

        def recording_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            _status(span, int(status.split(" ", 1)[0]))
            return start_response(status, headers, exc_info)

        token = context.attach(trace.set_span_in_context(span))
        try:
            body = self.app(environ, recording_start_response)
        except BaseException:
            span.end()
            raise
        finally:
            context.detach(token)
        return self._iterate(body, span)

    @staticmethod
    def _iterate(body: Iterable[bytes], span: Span) -> Iterator[bytes]:
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False):
                try:
                    yield from body
                finally:
                    close = getattr(body, "close", None)
                    if close is not None:
                        close()
        finally:
            span.end()


class ASGIServerSpans:
    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        span = _start(scope["method"], scope["path"])

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                _status(span, message["status"])
            await send(message)

        with trace.use_span(span, end_on_exit=True, record_exception=False):
            await self.app(scope, receive, recording_send)


class DjangoServerSpanMiddleware:
    """First in ``MIDDLEWARE``: the SERVER span of every request."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        span = _start(request.method, request.path)
        with trace.use_span(span, end_on_exit=True, record_exception=False):
            response = self.get_response(request)
            _status(span, response.status_code)
            return response
