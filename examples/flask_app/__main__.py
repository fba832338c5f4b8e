"""``python -m examples.flask_app [--host 127.0.0.1] [--port 5000]``: the example on werkzeug's server."""

from __future__ import annotations

import argparse

from .application import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.flask_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    app = create_app()
    print(f"claude_rbac Flask example on http://{args.host}:{args.port}/", flush=True)
    print(f"Claude: {app.config.get('CLAUDE_BACKEND', 'as configured')}", flush=True)
    app.run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
