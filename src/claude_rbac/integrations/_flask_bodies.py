"""Flask: a refusal raised inside a streamed body, after the response has started.

The status line and headers are on the wire by then, so no error handler can answer 403: the server logs
the error and cuts the connection, and the client has a 200 with a truncated body. The extension logs
why (and how to avoid it: open the Claude stream in the view, before returning the ``Response``), and
the test client ends the body where a server would, instead of raising into the test.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Response

from ..errors import RBACError

__all__ = ["cut_at_denial", "explain_late_denials"]

log = logging.getLogger("claude_rbac")


def explain_late_denials(response: Response) -> Response:
    """An ``after_request`` hook: a generator body logs why a refusal inside it reaches the client as a 200."""
    if inspect.isgenerator(response.response):  # not a file wrapper, which the server may send by itself
        response.response = _logging_late_denials(response.response)
    return response


def _logging_late_denials(body: Iterator[Any]) -> Iterator[Any]:
    try:
        yield from body
    except RBACError as error:
        log.error(
            "claude_rbac: a Claude call was refused (%s %s) after the streamed response had started: the client "
            "gets a 200 with a truncated body. Open the Claude stream in the view, before returning the Response.",
            error.status_code,
            error.reason,
        )
        raise


def cut_at_denial(body: Iterable[bytes]) -> Iterator[bytes]:
    """``body`` until a refusal raised inside it; what a server sends (the error is logged by the hook above)."""
    try:
        yield from iter(body)
    except RBACError:
        pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
