from __future__ import annotations

import logging

import pytest

from claude_rbac import RBAC, Policy
from claude_rbac.quota import detect_workers

KEY = "sk-ant-api03-deployment-tests-000000000000000000000000000-DPLY"


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["gunicorn", "-w", "4", "app:app"], {}, ("gunicorn", 4)),
        (["/venv/bin/gunicorn", "--workers=8", "app:app"], {}, ("gunicorn", 8)),
        (["gunicorn", "-w3", "app:app"], {}, ("gunicorn", 3)),
        (["uvicorn", "app:app", "--workers", "4"], {}, ("uvicorn", 4)),
        (["gunicorn", "app:app"], {"GUNICORN_CMD_ARGS": "--bind 0.0.0.0 --workers 6"}, ("gunicorn", 6)),
        (["uvicorn", "app:app"], {"WEB_CONCURRENCY": "5"}, ("uvicorn", 5)),
        (["python", "manage.py", "runserver"], {}, ("", 1)),
        (["pytest"], {}, ("", 1)),
    ],
)
def test_detect_workers(argv: list[str], environ: dict[str, str], expected: tuple[str, int]) -> None:
    assert detect_workers(argv, environ) == expected


def test_memory_storage_under_many_workers_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="claude_rbac")
    monkeypatch.setattr("sys.argv", ["gunicorn", "-w", "4", "app:app"])
    RBAC(Policy.default(), api_key=KEY)
    (record,) = caplog.records
    assert "memory:// but gunicorn runs 4 workers" in record.getMessage()
    assert "up to 40 a minute" in record.getMessage()
    caplog.clear()
    RBAC(Policy.default(), api_key=KEY, storage="redis://127.0.0.1:6379/0")
    monkeypatch.setattr("sys.argv", ["gunicorn", "app:app"])
    RBAC(Policy.default(), api_key=KEY)
    assert caplog.records == []
