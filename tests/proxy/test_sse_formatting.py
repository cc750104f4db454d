"""Hiding the usage Tollgate asked for holds however the provider formats its JSON and frames its events."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.app import create_app
from proxy.dialects.openai import OpenAI
from proxy.sse import StreamMeter
from tests.conftest import chat_chunks, make_config, sse
from tests.fakeprovider import FakeProvider, ServerThread

OPENAI = OpenAI()

_TRICKY_TEXT = st.text(max_size=12) | st.sampled_from(["[DONE]", '"usage"', '"choices":[]', '"usage": null', "data: x"])
_USAGE = {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}


def _dumps(obj: dict[str, Any], style: str) -> list[bytes]:
    """The data lines of ``obj`` written in ``style``."""
    if style == "compact":
        return [orjson.dumps(obj)]
    if style == "spaced":  # Python's json.dumps default: ", " and ": "
        return [json.dumps(obj).encode()]
    return json.dumps(obj, indent=1).encode().split(b"\n")  # multi-line data


def _ordered(obj: dict[str, Any], seed: int) -> dict[str, Any]:
    keys = list(obj)
    random.Random(seed).shuffle(keys)
    return {key: obj[key] for key in keys}


@st.composite
def _streams(draw: st.DrawFn) -> tuple[list[bytes], list[Any], list[bytes | None]]:
    """(the provider's stream in pieces, what the client must parse from it, the exact events when one-line)."""
    style = draw(st.sampled_from(["compact", "spaced", "multiline"]))
    newline = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    prefix = draw(st.sampled_from([b"data: ", b"data:"]))
    seed = draw(st.integers(0, 1000))
    texts = draw(st.lists(_TRICKY_TEXT, min_size=1, max_size=5))
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]} for t in texts]
    sent: list[bytes] = []
    expected: list[Any] = []
    exact: list[bytes | None] = []

    def event(obj: dict[str, Any]) -> bytes:
        return b"".join(prefix + line + newline for line in _dumps(obj, style)) + newline

    for chunk in chunks:
        with_usage = _ordered({**chunk, "usage": None}, seed)
        sent.append(event(with_usage))
        without = {k: v for k, v in with_usage.items() if k != "usage"}
        expected.append(without)
        exact.append(event(without) if style != "multiline" else None)
    sent.append(event(_ordered({**base, "choices": [], "usage": _USAGE}, seed)))
    sent.append(prefix + b"[DONE]" + newline + newline)
    expected.append("[DONE]")
    exact.append(prefix + b"[DONE]" + newline + newline)
    stream = b"".join(sent)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    return pieces, expected, exact


def _client_events(stream: bytes) -> list[Any]:
    """What an SSE client reads: each event's data, JSON-decoded."""
    events = []
    text = stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    for raw in text.split(b"\n\n"):
        data = b"\n".join(line[5:].removeprefix(b" ") for line in raw.split(b"\n") if line.startswith(b"data:"))
        if data:
            events.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return events


@settings(max_examples=300, deadline=None)
@given(_streams())
def test_the_client_gets_the_stream_it_asked_for_whatever_the_formatting(
    stream: tuple[list[bytes], list[Any], list[bytes | None]],
) -> None:
    pieces, expected, exact = stream
    meter = StreamMeter(OPENAI.stream_reader(True), hide_usage=True)
    out = b"".join(meter.feed(piece) for piece in pieces) + meter.finish()
    assert _client_events(out) == expected
    if all(e is not None for e in exact):
        assert out == b"".join(e for e in exact if e is not None)  # byte for byte but the member Tollgate added
    assert meter.usage is not None and meter.usage.tokens.output == 4
    assert meter.finished


@settings(max_examples=100, deadline=None)
@given(_streams())
def test_a_stream_that_asked_for_usage_passes_byte_for_byte(
    stream: tuple[list[bytes], list[Any], list[bytes | None]],
) -> None:
    pieces, _, _ = stream
    meter = StreamMeter(OPENAI.stream_reader(False), hide_usage=False)
    assert [meter.feed(piece) for piece in pieces] == pieces
    assert meter.usage is not None and meter.usage.tokens.input == 11


def test_done_in_the_text_does_not_end_the_stream() -> None:
    meter = StreamMeter(OPENAI.stream_reader(True), hide_usage=True)
    delta = b'data: {"choices":[{"index":0,"delta":{"content":"data: [DONE]"}}],"usage":null}\n\n'
    for _ in range(3):
        assert meter.feed(delta) == delta.replace(b',"usage":null', b"")  # each event goes on at once
        assert not meter.finished
    assert meter.feed(b"data: [DONE]\n\n") == b"data: [DONE]\n\n"
    assert meter.finished


@pytest.mark.parametrize("size", [0, 1, 2, 3, 7])
def test_a_stream_fed_event_by_event_or_a_few_bytes_at_a_time_is_hidden_as_when_fed_whole(size: int) -> None:
    events = chat_chunks(words=("a", "b"), completion_tokens=2)
    stream = b"".join(events)
    whole = StreamMeter(OPENAI.stream_reader(True), hide_usage=True)
    expected = whole.feed(stream) + whole.finish()
    pieces = events if size == 0 else tuple(stream[i : i + size] for i in range(0, len(stream), size))
    meter = StreamMeter(OPENAI.stream_reader(True), hide_usage=True)
    out = b"".join(meter.feed(piece) for piece in pieces) + meter.finish()
    assert out == expected and b'"usage"' not in out
    assert meter.usage is not None and meter.usage.tokens.output == 2


def test_a_chunk_with_empty_choices_and_no_usage_reaches_the_client() -> None:
    """Azure's first chunk carries prompt_filter_results and no choices: it is not the usage chunk."""
    first = b'data: {"choices":[],"created":0,"id":"","model":"","prompt_filter_results":[],"usage": null}\n\n'
    meter = StreamMeter(OPENAI.stream_reader(True), hide_usage=True)
    assert meter.feed(first) == first.replace(b',"usage": null', b"")


def test_a_stream_mentioning_done_flows_chunk_by_chunk(provider: FakeProvider, db_url: str) -> None:
    """Events reach the client as they arrive, even after one whose text says [DONE]."""
    chunks = chat_chunks(words=("say [DONE]", "and", "go on"), include_usage=True)
    provider.answer("POST", "/v1/chat/completions", sse(chunks, delay=0.3))
    body = b'{"model": "gpt-4o-mini", "stream": true, "messages": []}'
    arrivals: list[float] = []
    with ServerThread(create_app(make_config(provider, db_url))) as server:
        url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
        with httpx.stream("POST", url, content=body, timeout=10) as response:
            started = time.monotonic()
            for piece in response.iter_raw():
                if b"content" in piece:
                    arrivals.append(time.monotonic() - started)
    assert len(arrivals) >= 3
    assert arrivals[-1] - arrivals[0] > 0.5  # spread out as sent, not one lump at the end
