"""Where the examples send their Claude calls: the real API when a key is set, else a FakeClaude.

* ``ANTHROPIC_API_KEY`` set: the real API (or ``ANTHROPIC_BASE_URL`` when that is set too).
* only ``ANTHROPIC_BASE_URL`` set: that server with a placeholder key (tests point their servers'
  workers at one shared FakeClaude this way).
* neither: a FakeClaude started in this process, so ``make demo`` runs offline.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

from claude_rbac.testing import FakeClaude

__all__ = ["Backend", "backend_from_env"]

PLACEHOLDER_KEY = "sk-ant-fake-placeholder-key-for-local-tests-0000"


@dataclass(frozen=True)
class Backend:
    api_key: str
    base_url: str | None
    fake: FakeClaude | None

    @property
    def description(self) -> str:
        if self.fake is not None:
            return f"FakeClaude (offline) at {self.fake.url}"
        return f"Anthropic API at {self.base_url or 'https://api.anthropic.com'}"


def backend_from_env() -> Backend:
    api_key = os.environ.get("ANTHROPIC_API_KEY") or None
    base_url = os.environ.get("ANTHROPIC_BASE_URL") or None
    if api_key is not None:
        return Backend(api_key, base_url, None)
    if base_url is not None:
        return Backend(PLACEHOLDER_KEY, base_url, None)
    fake = FakeClaude(stream_delay=0.03).start()
    atexit.register(fake.stop)
    return Backend(PLACEHOLDER_KEY, fake.url, fake)
