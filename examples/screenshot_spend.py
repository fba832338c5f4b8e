"""Take ``docs/images/admin-spend.png``: the FastAPI example's admin page after a few priced calls.

    python -m examples.screenshot_spend [--out docs/images/admin-spend.png] [--chromium chromium]

Offline: the app talks to a FakeClaude scripted with each call's usage, on ``memory://``; the admin page is
fetched through the app (signed in as ada) and written to a file, which headless Chromium renders (the page is
self-contained: inline SVG and CSS, no script). Chromium is not a dependency of claude_rbac; on Debian,
``apt-get install chromium``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXTRA_USERS = "ulf=user,una=user,pia=power"

CALLS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    # (user, route, request body, the usage FakeClaude answers with)
    ("uma", "/api/chat", {"prompt": "Summarise this ticket"}, {"input_tokens": 42_000, "output_tokens": 450}),
    ("uma", "/api/chat", {"prompt": "And the next one"}, {"input_tokens": 3_000, "cache_read_input_tokens": 40_000}),
    ("ulf", "/api/chat", {"prompt": "Draft a reply"}, {"input_tokens": 18_000, "output_tokens": 500}),
    ("una", "/api/chat", {"prompt": "Translate"}, {"input_tokens": 6_000, "output_tokens": 300}),
    ("paul", "/api/long", {"prompt": "Write the report"}, {"input_tokens": 30_000, "output_tokens": 4_000}),
    (
        "paul",
        "/api/chat",
        {"prompt": "What changed this week?", "model": "claude-sonnet-4-6", "web_search": True},
        {"input_tokens": 12_000, "output_tokens": 900, "server_tool_use": {"web_search_requests": 3}},
    ),
    (
        "pia",
        "/api/chat",
        {"prompt": "Review", "model": "claude-sonnet-4-6"},
        {"input_tokens": 25_000, "output_tokens": 1_200},
    ),
    (
        "ada",
        "/api/long",
        {"prompt": "Plan the migration"},
        {
            "input_tokens": 2_000,
            "cache_creation_input_tokens": 60_000,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 60_000},
            "output_tokens": 3_000,
        },
    ),
]


def admin_page() -> str:
    """The admin page's HTML after :data:`CALLS`, from the FastAPI example on a scripted FakeClaude."""
    from fastapi.testclient import TestClient

    from claude_rbac.testing import FakeClaude

    with FakeClaude() as fake:
        os.environ.update(ANTHROPIC_BASE_URL=fake.url, CLAUDE_RBAC_STORAGE="memory://")
        os.environ.pop("ANTHROPIC_API_KEY", None)
        from examples.fastapi_app import create_app

        app = create_app()
        with TestClient(app) as client:
            for user, route, body, usage in CALLS:
                fake.script_usage(usage)
                client.post("/login", json={"username": user})
                response = client.post(route, json=body)
                response.raise_for_status()
            app.state.rbac.flush()
            client.post("/login", json={"username": "ada"})
            page = client.get("/admin")
            page.raise_for_status()
            return page.text


def screenshot(html: str, out: Path, chromium: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "admin.html"
        page.write_text(html, encoding="utf-8")
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--window-size=820,1180",
                f"--user-data-dir={tmp}/profile",
                f"--screenshot={out}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "admin-spend.png")
    parser.add_argument(
        "--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
    )
    args = parser.parse_args(argv)
    os.environ["CLAUDE_RBAC_DEMO_EXTRA_USERS"] = EXTRA_USERS  # read when examples.common is imported
    html = admin_page()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    screenshot(html, args.out.resolve(), args.chromium)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
