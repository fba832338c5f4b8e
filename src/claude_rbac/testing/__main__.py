"""Run a FakeClaude in its own process: ``python -m claude_rbac.testing [--port N]``.

It prints its URL on the first line of stdout and serves until it is stopped (SIGTERM or Ctrl-C).
Multi-worker tests and benchmarks use it so the server does not share the GIL with what it measures.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from .fake_claude import FakeClaude


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m claude_rbac.testing", description="Serve a FakeClaude.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--output-tokens", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--no-record", action="store_true", help="keep no request log (long benchmarks)")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeClaude(
        host=args.host, port=args.port, output_tokens=args.output_tokens, delay=args.delay, record=not args.no_record
    ) as fake:
        print(fake.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
