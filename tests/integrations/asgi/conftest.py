"""Shared pieces for the ASGI, Starlette and FastAPI tests: an RBAC on FakeClaude, trusted sign-in, spans, a server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import pytest
import uvicorn
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.requests import HTTPConnection
from starlette.testclient import TestClient

from claude_rbac import RBAC, Policy
from claude_rbac.testing import FakeClaude

TOKENS: Mapping[str, tuple[str, str]] = {
    "t-vera": ("vera", "viewer"),
    "t-uma": ("uma", "user"),
    "t-paul": ("paul", "power"),
    "t-ada": ("ada", "admin"),
}
"""API tokens the test apps know, server-side: the token says who you are; the server says your role."""

FORGED_HEADERS = {
    "x-role": "admin",
    "x-user": "ada",
    "x-user-role": "admin",
    "x-forwarded-user": "ada",
    "remote-user": "ada",
    "x-claude-rbac-role": "admin",
}
FORGED_QUERY = "role=admin&user=ada&principal=ada:admin"
FORGED_COOKIES = {"role": "admin", "user": "ada", "claude_rbac_role": "admin"}


def policy_with(**user: Any) -> Policy:
    """The default roles (viewer < user < power < admin), with the user role's settings overridden."""
    from claude_rbac.policy import DEFAULT_POLICY

    roles = {name: dict(settings) for name, settings in DEFAULT_POLICY["roles"].items()}
    roles["user"].update(user)
    return Policy.from_dict({**DEFAULT_POLICY, "roles": roles})


def bearer(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer t-{name}"}


class TokenUser(SimpleUser):
    def __init__(self, username: str, role: str) -> None:
        super().__init__(username)
        self.role = role


class TokenBackend(AuthenticationBackend):
    """Starlette authentication from a bearer token looked up server-side (like an API-token table)."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        scheme, _, token = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in TOKENS:
            return None
        username, role = TOKENS[token]
        return AuthCredentials(["authenticated"]), TokenUser(username, role)


@pytest.fixture
def make_rbac(fake_claude: FakeClaude, key_prefix: str) -> Callable[..., RBAC]:
    """``make_rbac(policy=None, storage="memory://", **kwargs)``: an RBAC whose calls reach ``fake_claude``."""

    def make(policy: Any = None, storage: str = "memory://", **kwargs: Any) -> RBAC:
        return RBAC(
            policy if policy is not None else Policy.default(),
            storage=storage,
            key_prefix=key_prefix,
            api_key="sk-ant-test-0000",
            base_url=fake_claude.url,
            **kwargs,
        )

    return make


@pytest.fixture
def rbac(make_rbac: Callable[..., RBAC]) -> RBAC:
    return make_rbac()


async def aclose_clients(rbac: RBAC) -> None:
    """Close the RBAC's Anthropic connection pools inside the event loop that opened them."""
    await rbac.aclose()


def closing_lifespan(rbac: RBAC) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """A Starlette/FastAPI ``lifespan=`` that closes the RBAC's pools on shutdown, inside the server's loop."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        await aclose_clients(rbac)

    return lifespan


@contextlib.contextmanager
def serving(app: Any, rbac: RBAC, **options: Any) -> Iterator[TestClient]:
    """``with TestClient(app)`` (so lifespan runs and one event loop serves every request), closing pools after."""
    with TestClient(app, **options) as client:
        try:
            yield client
        finally:
            client.portal.call(aclose_clients, rbac)  # type: ignore[union-attr]


def spans_named(exporter: Any, name: str) -> list[Any]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def authorize_spans(exporter: Any) -> list[dict[str, Any]]:
    """The attributes of every finished ``claude_rbac.authorize`` span, oldest first."""
    return [dict(span.attributes or {}) for span in spans_named(exporter, "claude_rbac.authorize")]


def route_decisions(exporter: Any) -> list[tuple[str | None, str, str]]:
    """(enduser.id, decision, reason) of the route-guard decisions (those that name a required role)."""
    return [
        (attrs.get("enduser.id"), attrs["claude_rbac.decision"], attrs["claude_rbac.decision.reason"])
        for attrs in authorize_spans(exporter)
        if "claude_rbac.required_role" in attrs
    ]


def wait_for(condition: Callable[[], object], timeout: float = 5.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def uvicorn_server(app: Any, timeout: float = 10.0, ws: str = "none") -> Iterator[str]:
    """Serve ``app`` with a real uvicorn on 127.0.0.1 (a thread of this process); yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws=ws)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), timeout, "uvicorn to start")
        if not server.started:
            raise RuntimeError("uvicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        assert not thread.is_alive(), "uvicorn did not stop"
