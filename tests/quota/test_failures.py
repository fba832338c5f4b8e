"""A storage failure says what broke, in the log line and on the call's span, and nothing secret."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from claude_rbac import RBAC, BackendUnavailable, Principal
from claude_rbac.quota import StorageFailure
from claude_rbac.testing import FakeClaude
from tests.support.redis import free_port

KEY = "sk-ant-api03-failure-tests-000000000000000000000000000-FAIL"
PASSWORD = "hunter2-redis-password"
ROLE = {"models": ["claude-haiku-*"], "max_tokens": 10, "rpm": 10, "tpm": 1000}


def test_the_log_line_and_the_span_carry_the_cause(
    fake_claude: FakeClaude, span_exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="claude_rbac")
    dead = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    rbac = RBAC({"roles": {"user": ROLE}}, storage=dead, api_key=KEY, base_url=fake_claude.url)
    with pytest.raises(BackendUnavailable):
        rbac.client(Principal("alice", "user")).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    (line,) = [r.getMessage() for r in caplog.records if "storage failed" in r.getMessage()]
    assert "ConnectionError: Error 111 connecting to <address>. Connection refused." in line
    (span,) = [s for s in span_exporter.get_finished_spans() if s.name == "anthropic.messages.create"]
    (event,) = [e for e in span.events if e.name == "exception"]
    attributes = dict(event.attributes or {})
    assert attributes["exception.type"].endswith("StorageFailure")
    assert "Connection refused" in str(attributes["exception.message"])
    for text in (line, *(str(value) for value in attributes.values())):
        assert PASSWORD not in text
        assert KEY not in text
        assert dead.rsplit(":", 1)[1].split("/", maxsplit=1)[0] not in text  # nor the address (the URI's port)
    assert fake_claude.requests == []
    rbac.close()


@pytest.mark.parametrize(
    ("raised", "shown"),
    [
        (RuntimeError("Event loop is closed"), "RuntimeError: Event loop is closed"),
        (
            ConnectionError("cannot reach redis://:hunter2@cache.internal:6379/0 now"),
            "ConnectionError: cannot reach <uri> now",
        ),
        (ValueError("login admin:hunter2@cache.internal failed"), "ValueError: login <credentials> failed"),
        (ValueError("AUTH password=hunter2 rejected"), "ValueError: AUTH password=<redacted> rejected"),
        (KeyError("key sk-ant-api03-abc-DEF leaked"), "KeyError: 'key <api key> leaked'"),
        (
            TypeError("WRONGTYPE at LIMITS:{claude_rbac/principal/user/alice}/tpm/1"),
            "TypeError: WRONGTYPE at <key>",
        ),
        (RuntimeError("NOAUTH Authentication required."), "RuntimeError: NOAUTH Authentication required."),
        (OSError("Error 111 connecting to cache.internal:6379."), "OSError: Error 111 connecting to <address>."),
        (OSError("Error connecting to ('10.0.0.7', 6380)."), "OSError: Error connecting to <address>."),
        (TimeoutError(), "TimeoutError"),
    ],
)
def test_the_message_is_scrubbed(raised: Exception, shown: str) -> None:
    assert str(StorageFailure.of(raised)) == shown


def test_the_message_is_bounded() -> None:
    assert len(str(StorageFailure.of(RuntimeError("x" * 10_000)))) < 250
