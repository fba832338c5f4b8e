"""The README examples in docs/starlette.md and docs/fastapi.md run exactly as written."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from starlette.testclient import TestClient

from claude_rbac.testing import FakeClaude

DOCS = Path(__file__).resolve().parents[3] / "docs"


def first_python_block(name: str) -> str:
    text = (DOCS / name).read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match is not None, f"no python example in {name}"
    return match.group(1)


@pytest.fixture
def docs_env(fake_claude: FakeClaude, monkeypatch: pytest.MonkeyPatch) -> FakeClaude:
    """What a reader has: ANTHROPIC_API_KEY in the environment (and here, the base URL of a FakeClaude)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-docs-example-0000")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_claude.url)
    return fake_claude


@pytest.fixture
def load_example(docs_env: FakeClaude, tmp_path: Path) -> Iterator[Any]:
    loaded: list[ModuleType] = []

    def load(doc: str) -> ModuleType:
        path = tmp_path / f"readme_{doc.replace('.', '_')}.py"
        path.write_text(first_python_block(doc), encoding="utf-8")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        loaded.append(module)
        return module

    yield load
    for module in loaded:
        sys.modules.pop(module.__name__, None)


def test_the_examples_are_about_thirty_lines() -> None:
    for doc in ("starlette.md", "fastapi.md"):
        lines = [line for line in first_python_block(doc).splitlines() if line.strip()]
        assert 25 <= len(lines) <= 40, (doc, len(lines))


def test_starlette_example(load_example: Any, docs_env: FakeClaude) -> None:
    example = load_example("starlette.md")
    with TestClient(example.app) as client:
        anonymous = client.post("/summarize", json={"text": "RBAC in front of Claude."})
        client.post("/login/uma")
        user = client.post("/summarize", json={"text": "RBAC in front of Claude."})
        client.post("/login/paul")
        power = client.post("/summarize", json={"text": "RBAC in front of Claude."})
        client.portal.call(example.rbac.aclose)  # type: ignore[union-attr]
    assert anonymous.status_code == 401
    assert user.status_code == 403
    assert user.json()["error"]["error_code"] == "role_insufficient"
    assert power.status_code == 200
    assert power.json() == {"summary": "Hello from FakeClaude, a local stand-in for the Messages API."}
    (call,) = docs_env.calls()
    assert call.api_key == "sk-ant-docs-example-0000"
    assert call.json["model"] == "claude-sonnet-4-6"


def test_fastapi_example(load_example: Any, docs_env: FakeClaude) -> None:
    example = load_example("fastapi.md")
    with TestClient(example.app) as client:
        anonymous = client.post("/summarize", params={"text": "RBAC in front of Claude."})
        client.post("/login/uma")
        user = client.post("/summarize", params={"text": "RBAC in front of Claude."})
        client.post("/login/paul")
        power = client.post("/summarize", params={"text": "RBAC in front of Claude."})
        schema = client.get("/openapi.json").json()
        client.portal.call(example.rbac.aclose)  # type: ignore[union-attr]
    assert anonymous.status_code == 401
    assert user.status_code == 403
    assert power.status_code == 200
    assert power.json() == {"summary": "Hello from FakeClaude, a local stand-in for the Messages API."}
    assert {"401", "403", "429"} <= set(schema["paths"]["/summarize"]["post"]["responses"])
    assert docs_env.count() == 1
