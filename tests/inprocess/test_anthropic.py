"""The official anthropic SDK through the meter, sync and async: one priced, attributed row per call."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from decimal import Decimal

import anthropic
import orjson
import pytest
from anthropic.types import MessageParam

from proxy.inprocess import Meter
from tests.conftest import json_answer, sse
from tests.dialects.conftest import provider_kinds
from tests.dialects.test_anthropic_sdk import _message, _stream_events
from tests.fakeprovider import FakeProvider
from tests.inprocess.conftest import MeterFactory, rows

MESSAGES = "/v1/messages"
MODEL = "claude-sonnet-4-5"
_HI: list[MessageParam] = [{"role": "user", "content": "hi"}]
_OPEN: list[anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


@pytest.fixture
def meter(meter_factory: MeterFactory, provider: FakeProvider) -> Meter:
    return meter_factory(provider_extra=provider_kinds(provider))


def _root(provider: FakeProvider) -> str:
    return f"http://{provider.host}:{provider.port}"


def _client(meter: Meter, provider: FakeProvider, max_retries: int = 0) -> anthropic.Anthropic:
    http_client = meter.httpx2_client()
    client = anthropic.Anthropic(
        base_url=_root(provider), api_key="sk-ant-app", http_client=http_client, max_retries=max_retries
    )
    _OPEN.append(client)
    return client


def _async_client(meter: Meter, provider: FakeProvider) -> anthropic.AsyncAnthropic:
    http_client = meter.async_httpx2_client()
    return anthropic.AsyncAnthropic(
        base_url=_root(provider), api_key="sk-ant-app", http_client=http_client, max_retries=0
    )


def test_a_message_is_one_priced_attributed_row(meter: Meter, provider: FakeProvider) -> None:
    usage = {"input_tokens": 50, "cache_read_input_tokens": 1000, "output_tokens": 100}
    provider.answer("POST", MESSAGES, json_answer(_message(usage, text="Bonjour")))
    with meter.attribute(user="alice", agent="planner"):
        message = _client(meter, provider).messages.create(model=MODEL, max_tokens=200, messages=_HI)
    assert message.content[0].text == "Bonjour"  # type: ignore[union-attr]
    assert provider.requests[0].header(b"authorization") == b"Bearer sk-ant-app"  # how this SDK sends api_key
    [row] = rows(meter)
    assert (row["front_door"], row["provider"], row["provider_kind"]) == ("inprocess", "fake-anthropic", "anthropic")
    assert (row["user_id"], row["agent"], row["input_tokens"], row["cached_input_tokens"]) == (
        "alice",
        "planner",
        1050,
        1000,
    )
    # claude-sonnet-4-5: input $3/M, cache read $0.30/M, output $15/M.
    expected = (50 * Decimal(3) + 1000 * Decimal("0.3") + 100 * Decimal(15)) / 10**6
    assert Decimal(row["cost_pico"]) / 10**12 == expected
    assert orjson.loads(row["provider_usage"]) == usage


def test_a_stream_read_to_its_end_takes_the_last_output_count(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", MESSAGES, sse(tuple(_stream_events(final_output=12))))
    with (
        meter.attribute(user="bob"),
        _client(meter, provider).messages.stream(model=MODEL, max_tokens=200, messages=_HI) as stream,
    ):
        text = "".join(stream.text_stream)
    assert text == "Hello"
    [row] = rows(meter)
    assert (row["user_id"], row["stream"], row["input_tokens"], row["output_tokens"]) == ("bob", True, 20, 12)
    assert (row["usage_source"], row["error_type"]) == ("reported", None)


def test_a_stream_closed_part_way_is_recorded_once(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", MESSAGES, sse(tuple(_stream_events()), delay=0.05))
    with _client(meter, provider).messages.stream(model=MODEL, max_tokens=200, messages=_HI) as stream:
        next(iter(stream))  # message_start only
    [row] = rows(meter)
    assert row["error_type"] == "client_disconnected"
    assert row["input_tokens"] == 20  # message_start said so before the app left


def test_an_abandoned_stream_is_recorded_once(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", MESSAGES, sse(tuple(_stream_events())))
    events = _client(meter, provider).messages.create(model=MODEL, max_tokens=200, messages=_HI, stream=True)
    next(iter(events))
    del events
    gc.collect()
    [row] = rows(meter)
    assert row["error_type"] == "client_disconnected"


def test_async_messages_and_streams_are_metered(meter: Meter, provider: FakeProvider) -> None:
    message = json_answer(_message({"input_tokens": 10, "output_tokens": 4}))
    provider.answer("POST", MESSAGES, message, sse(tuple(_stream_events(final_output=7))))

    async def calls() -> str:
        async with _async_client(meter, provider) as client:
            with meter.attribute(user="carol"):
                await client.messages.create(model=MODEL, max_tokens=20, messages=_HI)
                async with client.messages.stream(model=MODEL, max_tokens=20, messages=_HI) as stream:
                    return "".join([text async for text in stream.text_stream])

    assert asyncio.run(calls()) == "Hello"
    first, second = rows(meter)
    assert (first["user_id"], first["output_tokens"], first["stream"]) == ("carol", 4, False)
    assert (second["user_id"], second["output_tokens"], second["stream"]) == ("carol", 7, True)


def test_a_refusal_is_the_sdks_rate_limit_error_and_never_retried(
    meter_factory: MeterFactory, provider: FakeProvider
) -> None:
    limit = '[[limits]]\nscope = "user"\nid = "*"\nwindow = "total"\nmax_usd = 0.0001\n'
    meter = meter_factory(limit, provider_extra=provider_kinds(provider))
    with meter.attribute(user="alice"), pytest.raises(anthropic.RateLimitError) as raised:
        _client(meter, provider, max_retries=2).messages.create(model=MODEL, max_tokens=4096, messages=_HI)
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert raised.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert provider.requests == []
    [row] = rows(meter)
    assert (row["status"], row["error_type"], row["provider_kind"]) == (429, "spend_limit_exceeded", "anthropic")
