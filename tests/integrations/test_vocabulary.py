"""One vocabulary across the six integrations: the same names for the same ideas, the same guard signature."""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import get_type_hints

import pytest

from claude_rbac.integrations import GUARD_ATTRIBUTE, Guard, asgi, fastapi, flask, starlette, wsgi
from claude_rbac.policy import Narrowing

from .django.project import configure

configure()

from claude_rbac.integrations import django  # noqa: E402  (needs configured settings)

GUARDED: dict[str, ModuleType] = {"flask": flask, "starlette": starlette, "fastapi": fastapi, "django": django}
ALL: dict[str, ModuleType] = {**GUARDED, "wsgi": wsgi, "asgi": asgi}
SHARED = [
    "role",
    "models",
    "max_tokens",
    "rpm",
    "name",
    "tools",
    "mcp_servers",
    "service_tiers",
    "speeds",
    "inference_geos",
    "betas",
    "spend",
]


def test_the_narrowing_keywords_are_one_typed_dict() -> None:
    assert list(Narrowing.__annotations__) == SHARED[1:]
    assert list(get_type_hints(Narrowing)) == SHARED[1:]


@pytest.mark.parametrize("framework", GUARDED)
def test_requires_role_has_the_same_signature_everywhere(framework: str) -> None:
    parameters = list(inspect.signature(GUARDED[framework].requires_role).parameters.values())
    assert parameters[0].name == "role"
    assert parameters[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters[1:-1])
    assert (parameters[-1].name, parameters[-1].kind) == ("narrowing", inspect.Parameter.VAR_KEYWORD)
    assert parameters[-1].annotation == "Unpack[Narrowing]"


@pytest.mark.parametrize("framework", GUARDED)
def test_a_misspelt_narrowing_keyword_fails_at_declaration(framework: str) -> None:
    with pytest.raises(TypeError, match="modles"):
        GUARDED[framework].requires_role("user", modles=["claude-haiku-*"])
    with pytest.raises(TypeError):
        GUARDED[framework].requires_role("user", ["claude-haiku-*"])  # narrowing is by keyword only


@pytest.mark.parametrize("framework", GUARDED)
def test_every_guard_leaves_the_same_marker(framework: str) -> None:
    def view(request: object) -> None: ...

    declared = GUARDED[framework].requires_role(
        "user",
        models="claude-haiku-*",
        max_tokens=10,
        rpm=3,
        name="chat",
        tools=["custom", "web_search"],
        mcp_servers="https://mcp.example.com/*",
        service_tiers=["auto"],
        speeds=["standard"],
        inference_geos=["us"],
        betas=["mcp-client-*"],
    )
    # FastAPI's guard is the dependency itself; the others decorate a view.
    guarded = declared if framework == "fastapi" else declared(view)
    guard = getattr(guarded, GUARD_ATTRIBUTE)
    assert isinstance(guard, Guard)
    assert (guard.role, guard.scope.models, guard.scope.max_tokens, guard.scope.rpm, guard.scope.name) == (
        "user",
        ("claude-haiku-*",),
        10,
        3,
        "chat",
    )
    assert dict(guard.scope.field_sets) == {
        "tools": ("custom", "web_search"),
        "mcp_servers": ("https://mcp.example.com/*",),
        "service_tiers": ("auto",),
        "speeds": ("standard",),
        "inference_geos": ("us",),
        "betas": ("mcp-client-*",),
    }


@pytest.mark.parametrize("framework", ALL)
def test_every_integration_names_the_principal_the_same_way(framework: str) -> None:
    assert callable(ALL[framework].get_principal)
    assert "get_principal" in ALL[framework].__all__


@pytest.mark.parametrize("framework", [name for name in ALL if name != "asgi"])
def test_every_integration_with_guards_hands_out_the_client_the_same_way(framework: str) -> None:
    assert callable(ALL[framework].get_claude)
    assert "get_claude" in ALL[framework].__all__


def test_the_framework_native_spellings_are_aliases() -> None:
    assert flask.get_claude is flask.current_claude
    assert flask.get_principal is flask.current_principal
    assert asgi.get_principal is asgi.principal_of


def test_fastapis_old_principal_dependency_still_works_and_warns() -> None:
    def load() -> None:
        return None

    with pytest.warns(DeprecationWarning, match="principal_loader"):
        dependency = fastapi.requires_role("user", principal_dependency=load)
    assert "principal" in inspect.signature(dependency).parameters
