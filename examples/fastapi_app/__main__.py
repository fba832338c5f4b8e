"""``python -m examples.fastapi_app [--host 127.0.0.1] [--port 8000]``: the demo on uvicorn (``make demo``)."""

from __future__ import annotations

import argparse
import shlex

import uvicorn

from .application import create_app


def banner(url: str, backend: str) -> str:
    """What a person needs to start: the URL, where Claude's answers come from, and a few curl lines."""
    jar = "-b /tmp/claude-rbac-demo.jar -c /tmp/claude-rbac-demo.jar"
    chat = shlex.quote('{"prompt": "Hello, Claude"}')
    opus = shlex.quote('{"prompt": "Hello", "model": "claude-opus-4-7"}')
    return "\n".join(
        [
            f"claude_rbac FastAPI demo on {url}/  (open it in a browser)",
            f"Claude: {backend}",
            f"API docs: {url}/docs",
            "",
            "Try it with curl (uma is a user, paul a power user; see examples/common.py):",
            f"  curl {jar} -d username=uma {url}/login",
            f"  curl {jar} {url}/api/me",
            f"  curl {jar} -H 'content-type: application/json' -d {chat} {url}/api/chat",
            f"  curl {jar} -N '{url}/api/chat/stream?prompt=Tell+me+a+story'",
            f"  curl {jar} -H 'content-type: application/json' -d {opus} {url}/api/chat   # 403 for uma",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.fastapi_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    app = create_app()
    print(banner(f"http://{args.host}:{args.port}", app.state.claude_backend), flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
