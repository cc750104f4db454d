from __future__ import annotations

import orjson
import pytest

from proxy.dialects.openai import OpenAI
from proxy.sse import StreamMeter
from tests.conftest import chat_chunks

OPENAI = OpenAI()


def _relay(meter: StreamMeter, pieces: list[bytes]) -> bytes:
    return b"".join(meter.feed(p) for p in pieces) + meter.finish()


def _split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_usage_is_found_however_the_stream_is_split(size: int) -> None:
    stream = b"".join(chat_chunks(prompt_tokens=40, completion_tokens=9, cached_tokens=8))
    meter = StreamMeter(OPENAI.stream_reader(False))
    out = _relay(meter, _split_every(stream, size))
    assert out == stream
    assert meter.usage is not None
    assert (meter.usage.tokens.input, meter.usage.tokens.output, meter.usage.tokens.cached_input) == (40, 9, 8)


@pytest.mark.parametrize("size", [1, 13, 10_000])
def test_hidden_usage_stream_equals_the_stream_the_client_asked_for(size: int) -> None:
    upstream = b"".join(chat_chunks(include_usage=True))
    asked_for = b"".join(chat_chunks(include_usage=False))
    meter = StreamMeter(OPENAI.stream_reader(True), hide_usage=True)
    assert _relay(meter, _split_every(upstream, size)) == asked_for
    assert meter.usage is not None and meter.usage.tokens.output == 3


def test_responses_stream_usage_comes_from_response_completed() -> None:
    completed = {
        "type": "response.completed",
        "response": {
            "id": "resp_1",
            "model": "gpt-4o-mini",
            "usage": {
                "input_tokens": 30,
                "input_tokens_details": {"cached_tokens": 10},
                "output_tokens": 20,
                "output_tokens_details": {"reasoning_tokens": 4},
            },
        },
    }
    created = {"type": "response.created", "response": {"id": "resp_1", "usage": None}}
    stream = (
        b"event: response.created\ndata: " + orjson.dumps(created) + b"\n\n"
        b"event: response.completed\ndata: " + orjson.dumps(completed) + b"\n\n"
    )
    meter = StreamMeter(OPENAI.stream_reader(False))
    assert _relay(meter, _split_every(stream, 5)) == stream
    assert meter.usage is not None
    tokens = meter.usage.tokens
    assert (tokens.input, tokens.cached_input, tokens.output, tokens.reasoning) == (30, 10, 20, 4)


def test_crlf_delimited_events_are_read() -> None:
    stream = b"".join(chat_chunks()).replace(b"\n\n", b"\r\n\r\n")
    meter = StreamMeter(OPENAI.stream_reader(False))
    assert _relay(meter, _split_every(stream, 11)) == stream
    assert meter.usage is not None


def test_a_stream_that_is_not_sse_passes_unchanged_with_no_usage() -> None:
    garbage = b'{"usage": {"prompt_tokens": 3}} not an event stream'
    for hide in (False, True):
        meter = StreamMeter(OPENAI.stream_reader(hide), hide_usage=hide)
        assert _relay(meter, _split_every(garbage, 4)) == garbage
        assert meter.usage is None
