"""Made-up model names and roles never become metric series (issue #14, item 13).

The attack: a role allowed ``claude-haiku-*`` sends 1,500 requests, each with a model name of its own
that matches the glob (``claude-haiku-anything-1``, ...). Each used to become a ``gen_ai.request.model``
value on the decisions counter: 1,500 series, a cardinality bill and a way to flood dashboards. Labels
now come from bounded sets: the installed SDK's model ids, the policy's patterns, else ``_other``; roles
the policy has, else ``_other``. Spans keep the exact names.
"""

from __future__ import annotations

from collections import Counter

import pytest

from claude_rbac import RBAC, AccessDenied, Policy, Principal
from claude_rbac.testing import FakeClaude, InMemoryMetrics

KEY = "sk-ant-api03-metric-cardinality-tests-0000000000000000000-CARD"
MESSAGES = [{"role": "user", "content": "hi"}]
POLICY = {"version": 1, "roles": {"user": {"models": ["claude-haiku-*", "claude-sonnet-4-6"], "max_tokens": 64}}}
REQUESTS = 1_500


def series(metrics: InMemoryMetrics, name: str, attribute: str) -> Counter[object]:
    return Counter(attributes[attribute] for attributes, _ in metrics.points(name))


def test_made_up_model_names_share_their_patterns_series(
    fake_claude: FakeClaude, metric_reader: InMemoryMetrics
) -> None:
    with RBAC(POLICY, api_key=KEY, base_url=fake_claude.url, meter_provider=metric_reader.provider) as rbac:
        client = rbac.client(Principal("uma", "user")).with_options(max_retries=0)
        for index in range(REQUESTS):
            client.messages.create(model=f"claude-haiku-anything-{index}", max_tokens=8, messages=MESSAGES)
        client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=MESSAGES)  # the SDK knows it
        client.messages.create(model="claude-sonnet-4-6", max_tokens=8, messages=MESSAGES)
    assert fake_claude.count() == REQUESTS + 2
    models = series(metric_reader, "claude_rbac.decisions", "gen_ai.request.model")
    assert set(models) == {"claude-haiku-*", "claude-haiku-4-5", "claude-sonnet-4-6"}
    assert set(series(metric_reader, "claude_rbac.tokens", "gen_ai.request.model")) == set(models)


def test_made_up_roles_share_one_series(fake_claude: FakeClaude, metric_reader: InMemoryMetrics) -> None:
    """A principal loader that maps users to roles the policy lacks: denied, and one ``_other`` series."""
    with RBAC(Policy.default(), api_key=KEY, base_url=fake_claude.url, meter_provider=metric_reader.provider) as rbac:
        for index in range(200):
            with pytest.raises(AccessDenied):
                rbac.client(Principal(f"u{index}", f"role-{index}")).messages.create(
                    model="claude-haiku-4-5", max_tokens=8, messages=MESSAGES
                )
    assert set(series(metric_reader, "claude_rbac.decisions", "claude_rbac.role")) == {"_other"}
    assert fake_claude.requests == []
