"""The input-token estimate reserved before a call: text by its JSON size, an image at its most."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_rbac.policy import estimate_input_tokens
from claude_rbac.policy._call_plan import IMAGE_TOKENS

PROMPT_KEYS = ("system", "messages", "tools", "tool_choice")


def _reference(body: dict[str, Any]) -> int:
    """The rule, written plainly: every image block becomes null, the rest counts one token per 3 UTF-8 bytes."""
    images = 0

    def without_images(value: Any) -> Any:
        nonlocal images
        if isinstance(value, dict):
            if value.get("type") == "image" and isinstance(value.get("source"), dict):
                images += 1
                return None
            return {key: without_images(item) for key, item in value.items()}
        if isinstance(value, list):
            return [without_images(item) for item in value]
        return value

    prompt = without_images({key: body[key] for key in PROMPT_KEYS if key in body})
    return math.ceil(len(json.dumps(prompt, ensure_ascii=False, default=str).encode()) / 3) + images * IMAGE_TOKENS


image = st.fixed_dictionaries(
    {
        "type": st.just("image"),
        "source": st.fixed_dictionaries({"type": st.just("base64"), "data": st.text(max_size=40)}),
    }
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=20), st.sampled_from(["image", '"image"', "é"])
)
values = st.recursive(
    st.one_of(scalars, image),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["type", "text", "source", "image"]), inner)
    ),
    max_leaves=12,
)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=st.dictionaries(st.sampled_from([*PROMPT_KEYS, "model", "max_tokens"]), values))
def test_the_estimate_follows_the_rule(body: dict[str, Any]) -> None:
    assert estimate_input_tokens(body) == _reference(body)


def test_an_image_counts_its_most_whatever_its_size() -> None:
    block = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 300_000}}
    text = {"type": "text", "text": "What is in this image?"}
    with_image = {"messages": [{"role": "user", "content": [block, text]}]}
    without = {"messages": [{"role": "user", "content": [None, text]}]}
    assert estimate_input_tokens(with_image) == estimate_input_tokens(without) + IMAGE_TOKENS


def test_text_that_names_an_image_is_text() -> None:
    body = {"messages": [{"role": "user", "content": 'say "image" ' * 30}]}
    assert estimate_input_tokens(body) == math.ceil(len(json.dumps({"messages": body["messages"]})) / 3)


def test_non_ascii_text_counts_its_utf8_bytes() -> None:
    body = {"system": "é" * 300}
    assert estimate_input_tokens(body) == math.ceil((len(json.dumps(body, ensure_ascii=False)) + 300) / 3)
