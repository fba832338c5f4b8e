"""Run a FakeClaude in its own process: ``python -m claude_rbac.testing [--port N] [...]``.

It prints its URL on the first line of stdout and serves until it is stopped (SIGTERM or Ctrl-C).
Multi-worker tests and benchmarks use it so the server does not share the GIL with what it measures;
apps point at it with ``ANTHROPIC_BASE_URL`` to run offline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .fake_claude import FakeClaude

DESCRIPTION = """\
Serve a FakeClaude: a local stand-in for the Anthropic Messages API (messages, SSE streaming,
count_tokens, batches, error bodies) that accepts every request field and answers with plausible,
API-shaped usage. It prints its URL on the first line of stdout and serves until SIGTERM or Ctrl-C.
"""

EPILOG = """\
point an app at it:
  python -m claude_rbac.testing --port 8765 &
  ANTHROPIC_BASE_URL=http://127.0.0.1:8765 ANTHROPIC_API_KEY=sk-ant-placeholder python app.py
  (any key works: FakeClaude records it and checks none)

usage file (--usage-json): a JSON object is the usage of every answer, in place of the computed
keys it names, e.g. {"cache_read_input_tokens": 900, "server_tool_use": {"web_search_requests": 2}};
a JSON list is a queue, one object per answered message in order, then the computed usage again.
"""


def _usage_file(path: str) -> Mapping[str, Any] | list[Mapping[str, Any]]:
    try:
        loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read a JSON usage from {path}: {exc}") from exc
    items = loaded if isinstance(loaded, list) else [loaded]
    if not items or not all(isinstance(item, dict) for item in items):
        raise argparse.ArgumentTypeError(f"{path} must hold a JSON object or a non-empty list of objects")
    return loaded  # type: ignore[no-any-return]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m claude_rbac.testing",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    add("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default: %(default)s)")
    add("--output-tokens", type=int, default=10, metavar="N", help="output tokens per answer, capped by max_tokens")
    add("--delay", type=float, default=0.0, metavar="SECONDS", help="wait before each answer")
    add("--stream-delay", type=float, default=0.0, metavar="SECONDS", help="wait between the SSE events of a stream")
    add("--org-id", metavar="UUID", help="answer the tenant 403 when anthropic-allowed-org-ids excludes this org")
    add("--priority", action="store_true", help="the org has Priority Tier: service_tier 'auto' answers 'priority'")
    add("--cache-write", type=int, default=0, metavar="N", help="fixed cache_creation_input_tokens on every answer")
    add("--cache-read", type=int, default=0, metavar="N", help="fixed cache_read_input_tokens on every answer")
    add("--usage-json", type=_usage_file, metavar="FILE", help="usage to answer with (see below)")
    add("--no-record", action="store_true", help="keep no request log (long benchmarks)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scripted = args.usage_json if isinstance(args.usage_json, list) else []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeClaude(
        host=args.host,
        port=args.port,
        output_tokens=args.output_tokens,
        cache_creation_input_tokens=args.cache_write,
        cache_read_input_tokens=args.cache_read,
        delay=args.delay,
        stream_delay=args.stream_delay,
        org_id=args.org_id,
        record=not args.no_record,
        usage=None if scripted else args.usage_json,
        priority=args.priority,
    ) as fake:
        for usage in scripted:
            fake.script_usage(usage)
        print(fake.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
