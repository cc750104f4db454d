"""Anthropic usage into Tollgate's columns: real payloads, one row per documented rule, and any JSON at all."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing import TokenCounts
from proxy.dialects.anthropic import Anthropic, usage_from_body, usage_from_counts
from proxy.sse import StreamMeter


@pytest.mark.parametrize(
    ("usage", "tokens"),
    [
        # No cache: input_tokens is the whole prompt.
        ({"input_tokens": 25, "output_tokens": 11}, TokenCounts(input=25, output=11)),
        # Cache reads and writes are outside input_tokens: Tollgate's input adds them.
        (
            {
                "input_tokens": 3,
                "cache_creation_input_tokens": 1200,
                "cache_read_input_tokens": 8000,
                "output_tokens": 40,
                "service_tier": "standard",
            },
            TokenCounts(input=9203, cached_input=8000, cache_write=1200, output=40),
        ),
        # The 5-minute / 1-hour split of the writes.
        (
            {
                "input_tokens": 10,
                "cache_creation_input_tokens": 300,
                "cache_read_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
                "output_tokens": 5,
            },
            TokenCounts(input=310, cache_write=100, cache_write_1h=200, output=5),
        ),
        # Writes beyond the split are priced at the 5-minute rate, never dropped.
        (
            {
                "input_tokens": 1,
                "cache_creation_input_tokens": 500,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 200},
                "output_tokens": 1,
            },
            TokenCounts(input=501, cache_write=300, cache_write_1h=200, output=1),
        ),
        # A split that says more than the total: every write it names is counted.
        (
            {"input_tokens": 1, "cache_creation": {"ephemeral_5m_input_tokens": 7, "ephemeral_1h_input_tokens": 3}},
            TokenCounts(input=11, cache_write=7, cache_write_1h=3),
        ),
        # Nulls (as message_start sends some) and junk read as 0.
        (
            {"input_tokens": None, "cache_read_input_tokens": -5, "output_tokens": "7", "cache_creation": None},
            TokenCounts(),
        ),
    ],
)
def test_usage_counts(usage: dict[str, Any], tokens: TokenCounts) -> None:
    read = usage_from_counts(usage)
    assert read is not None and read.tokens == tokens


def test_a_message_gives_its_model_service_tier_and_raw_usage() -> None:
    body = orjson.dumps(
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "Hi"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 4, "output_tokens": 2, "service_tier": "priority"},
        }
    )
    usage = usage_from_body(body)
    assert usage is not None
    assert (usage.model, usage.service_tier, usage.provider_usage) == (
        "claude-sonnet-4-5-20250929",
        "priority",
        {"input_tokens": 4, "output_tokens": 2, "service_tier": "priority"},
    )


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: ".encode() + orjson.dumps({"type": kind, **data}) + b"\n\n"


def _read_stream(*events: bytes) -> StreamMeter:
    meter = StreamMeter(Anthropic().stream_reader(False))
    for event in events:
        meter.feed(event)
    meter.finish()
    return meter


def test_message_delta_counts_are_cumulative_the_last_value_wins() -> None:
    start = {"message": {"model": "claude-haiku-4-5", "usage": {"input_tokens": 10, "output_tokens": 1}}}
    meter = _read_stream(
        _event("message_start", start),
        _event("message_delta", {"delta": {"stop_reason": None}, "usage": {"output_tokens": 30}}),
        _event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 75}}),
        _event("message_stop", {}),
    )
    assert meter.usage is not None and meter.usage.tokens == TokenCounts(input=10, output=75)
    assert meter.usage.model == "claude-haiku-4-5" and meter.finished


def test_message_delta_may_restate_the_input_counts() -> None:
    start = {"message": {"model": "m", "usage": {"input_tokens": 5, "cache_read_input_tokens": 0, "output_tokens": 1}}}
    delta = {"usage": {"input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 9}}
    meter = _read_stream(_event("message_start", start), _event("message_delta", delta))
    assert meter.usage is not None and meter.usage.tokens == TokenCounts(input=105, cached_input=100, output=9)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "input_tokens",
                    "output_tokens",
                    "cache_read_input_tokens",
                    "cache_creation_input_tokens",
                    "cache_creation",
                    "ephemeral_5m_input_tokens",
                    "ephemeral_1h_input_tokens",
                    "service_tier",
                    "usage",
                    "model",
                    "type",
                    "message",
                ]
            )
            | st.text(max_size=6),
            children,
            max_size=6,
        )
    ),
    max_leaves=30,
)


@given(_JSON)
def test_any_json_gives_usage_or_none_never_an_error_or_a_negative_count(value: Any) -> None:
    for usage in (usage_from_counts(value), usage_from_body(orjson.dumps(value))):
        assert usage is None or min(vars_of(usage.tokens)) >= 0


@given(st.lists(_JSON, max_size=5))
def test_any_stream_of_json_events_reads_without_error(values: list[Any]) -> None:
    events = [b"data: " + orjson.dumps(v) + b"\n\n" for v in values]
    for kind in ("message_start", "message_delta"):
        events.append(_event(kind, {"usage": values[0] if values else None, "message": values[-1] if values else 1}))
    usage = _read_stream(*events).usage
    assert usage is None or min(vars_of(usage.tokens)) >= 0


def vars_of(tokens: TokenCounts) -> list[int]:
    import dataclasses

    return list(dataclasses.astuple(tokens))
