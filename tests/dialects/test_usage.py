from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.dialects.openai import OpenAI, usage_from_body, usage_from_event, usage_from_object
from proxy.sse import StreamMeter
from tests.conftest import chat_completion

OPENAI = OpenAI()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {"prompt_tokens": 100, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 60}},
            (100, 60, 20, 0),
        ),
        (
            {"input_tokens": 50, "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 12}},
            (50, 0, 30, 12),
        ),
        ({"prompt_tokens": 8, "total_tokens": 8}, (8, 0, 0, 0)),
        ({"prompt_tokens": -3, "completion_tokens": "7"}, (0, 0, 0, 0)),
        ({"prompt_tokens": True, "completion_tokens": 2.5}, (0, 0, 0, 0)),
    ],
)
def test_usage_fields_are_read(usage: dict[str, Any], expected: tuple[int, int, int, int]) -> None:
    found = usage_from_object({"usage": usage})
    assert found is not None
    t = found.tokens
    assert (t.input, t.cached_input, t.output, t.reasoning) == expected


def test_body_usage_carries_model_and_service_tier() -> None:
    usage = usage_from_body(chat_completion(service_tier="priority", model="gpt-4o-2024-08-06"))
    assert usage is not None
    assert (usage.service_tier, usage.model) == ("priority", "gpt-4o-2024-08-06")


def test_null_usage_is_no_usage() -> None:
    assert usage_from_event(b'{"choices": [], "usage": null}') is None


@given(json_values)
def test_any_json_body_never_raises(value: Any) -> None:
    usage_from_body(json.dumps(value).encode())
    usage_from_object(value)
    usage_from_object({"usage": value})
    usage_from_event(json.dumps({"type": "response.completed", "response": {"usage": value}}).encode())


@given(st.binary())
def test_any_bytes_never_raise(data: bytes) -> None:
    usage_from_body(data)
    usage_from_event(data)


@given(st.lists(st.binary(max_size=64), max_size=20), st.booleans())
def test_any_stream_never_raises_and_passes_through_unhidden(pieces: list[bytes], hide: bool) -> None:
    meter = StreamMeter(OPENAI.stream_reader(hide), hide_usage=hide)
    out = b"".join(meter.feed(p) for p in pieces) + meter.finish()
    if not hide:
        assert out == b"".join(pieces)


def test_provider_labels_a_row_cannot_hold_are_dropped() -> None:
    body = b'{"model": "gpt-4o\\u0000", "service_tier": "' + b"t" * 40 + b'", "usage": {"prompt_tokens": 3}}'
    usage = usage_from_body(body)
    assert usage is not None
    assert (usage.model, usage.service_tier, usage.tokens.input) == (None, None, 3)
    fine = usage_from_body(b'{"model": "gpt-4o", "service_tier": "flex", "usage": {"prompt_tokens": 3}}')
    assert fine is not None and (fine.model, fine.service_tier) == ("gpt-4o", "flex")
