"""``python -m tests.soak``: run the soak and print (or write) its markdown section, asserting nothing.

.venv/bin/python -m tests.soak [--seconds 60] [--no-persistence] [--keepalive] [--write benchmarks/soak.md]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tests.soak.report import markdown, write_section
from tests.soak.scenario import SoakConfig, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description="Run the soak and report it.")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("CLAUDE_RBAC_SOAK_SECONDS", "60")))
    parser.add_argument("--no-persistence", action="store_true", help="Redis without AOF: counters die with it")
    parser.add_argument("--keepalive", action="store_true", help="reuse each client's connection")
    parser.add_argument("--write", metavar="FILE", type=Path, help="replace this variant's section of FILE")
    args = parser.parse_args(argv)
    soak = run(SoakConfig(seconds=args.seconds, persistence=not args.no_persistence, keepalive=args.keepalive))
    print(markdown(soak))
    if args.write is not None:
        write_section(args.write, soak)
    return 0


if __name__ == "__main__":
    sys.exit(main())
