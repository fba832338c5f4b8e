"""The app in FastAPI: ``requires_role`` as a dependency yielding the governed ``AsyncAnthropic``.

No wrapper makes the SERVER span here: FastAPI (0.160+) makes its own when a tracer provider is set,
with INTERNAL operation spans (``fastapi.dependencies``, ``fastapi.endpoint``...) under it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from anthropic import AsyncAnthropic
from fastapi import Depends, FastAPI
from pydantic import BaseModel
from starlette.requests import HTTPConnection
from starlette.responses import Response

from claude_rbac import RBAC, Principal
from claude_rbac.integrations.fastapi import EventStreamResponse, RBACMiddleware, requires_role

from .asgi_app import StarletteHarness
from .common import HAIKU, answer, message_args, principal_for
from .starlette_app import relay

ROUTES = {"/chat": "/chat", "/stream": "/stream"}
OPERATION_SPANS = frozenset({"fastapi.dependencies", "fastapi.endpoint", "fastapi.serialization"})

UserClaude = Annotated[AsyncAnthropic, Depends(requires_role("user"))]


class Chat(BaseModel):
    prompt: str
    model: str = HAIKU
    max_tokens: int = 100


def token_principal(connection: HTTPConnection) -> Principal | None:
    return principal_for(connection.headers.get("authorization"))


def create_app(rbac: RBAC, **fastapi_options: Any) -> FastAPI:
    app = FastAPI(**fastapi_options)
    app.add_middleware(RBACMiddleware, rbac=rbac, principal_loader=token_principal)

    @app.post("/chat")
    async def chat(body: Chat, claude: UserClaude) -> dict[str, Any]:
        return answer(await claude.messages.create(**message_args(body.model_dump())))

    @app.post("/stream", response_class=EventStreamResponse)
    async def stream(body: Chat, claude: UserClaude) -> Response:
        opened = await claude.messages.create(**message_args(body.model_dump()), stream=True)
        return EventStreamResponse(relay(opened))

    return app


def build(options: Mapping[str, Any]) -> StarletteHarness:
    rbac = RBAC(**options)
    return StarletteHarness("fastapi", create_app(rbac), rbac, ROUTES, OPERATION_SPANS)
