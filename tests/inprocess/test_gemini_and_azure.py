"""google-genai and the openai SDK's AzureOpenAI through the meter: the same rows as through the proxy."""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterator
from decimal import Decimal

import httpx2
import openai
import orjson
import pytest
from google import genai
from google.genai import types

from proxy.inprocess import Meter
from tests.conftest import chat_completion, json_answer, sse
from tests.dialects.conftest import provider_kinds
from tests.dialects.test_azure_sdk import API_VERSION, CHAT, DEPLOYMENTS, _azure_chunks
from tests.dialects.test_gemini_sdk import FLASH, GENERATE, STREAM, _answer, _sse_chunks
from tests.fakeprovider import FakeProvider
from tests.inprocess.conftest import MeterFactory, rows

M = Decimal(10**6)
_OPEN: list[httpx2.Client] = []


@pytest.fixture
def meter(meter_factory: MeterFactory, provider: FakeProvider) -> Meter:
    return meter_factory(provider_extra=provider_kinds(provider, azure=DEPLOYMENTS))


def _root(provider: FakeProvider) -> str:
    return f"http://{provider.host}:{provider.port}"


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _gemini(meter: Meter, provider: FakeProvider, http_async: httpx2.AsyncClient | None = None) -> genai.Client:
    """A google-genai client through the meter; an async test passes the async client it closes itself."""
    http = meter.httpx2_client()
    _OPEN.append(http)
    options = types.HttpOptions(base_url=_root(provider), httpx_client=http, httpx_async_client=http_async)
    return genai.Client(api_key="AIza-app", http_options=options)


def test_gemini_generate_content_is_one_priced_attributed_row(meter: Meter, provider: FakeProvider) -> None:
    metadata = {"promptTokenCount": 1200, "cachedContentTokenCount": 1000, "candidatesTokenCount": 40}
    provider.answer("POST", GENERATE, json_answer(orjson.dumps(_answer(metadata, text="Bonjour"))))
    with meter.attribute(user="alice"):
        answer = _gemini(meter, provider).models.generate_content(model=FLASH, contents="hi")
    assert answer.text == "Bonjour"
    assert provider.requests[0].header(b"x-goog-api-key") == b"AIza-app"
    [row] = rows(meter)
    assert (row["front_door"], row["provider"], row["user_id"]) == ("inprocess", "fake-gemini", "alice")
    # gemini/gemini-2.5-flash: input $0.30/M, cached $0.03/M, output $2.50/M.
    expected = (200 * Decimal("0.3") + 1000 * Decimal("0.03") + 40 * Decimal("2.5")) / M
    assert Decimal(row["cost_pico"]) / 10**12 == expected


def test_a_gemini_stream_takes_the_last_running_totals(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", STREAM, sse(_sse_chunks()))
    chunks = list(_gemini(meter, provider).models.generate_content_stream(model=FLASH, contents="hi"))
    assert "".join(c.text or "" for c in chunks) == "Hello!"
    [row] = rows(meter)
    assert (row["input_tokens"], row["output_tokens"], row["reasoning_tokens"], row["stream"]) == (6, 9, 5, True)


def test_a_gemini_stream_left_part_way_is_recorded_once(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", STREAM, sse(_sse_chunks(), delay=0.05))
    stream = _gemini(meter, provider).models.generate_content_stream(model=FLASH, contents="hi")
    next(stream)
    assert isinstance(stream, Generator)  # what the SDK returns, typed as an Iterator
    stream.close()
    [row] = rows(meter)
    assert (row["error_type"], row["input_tokens"]) == ("client_disconnected", 6)


def test_async_gemini_calls_and_streams_are_metered(meter: Meter, provider: FakeProvider) -> None:
    metadata = {"promptTokenCount": 5, "candidatesTokenCount": 3}
    provider.answer("POST", GENERATE, json_answer(orjson.dumps(_answer(metadata))))
    provider.answer("POST", STREAM, sse(_sse_chunks()))

    async def calls() -> str:
        async with meter.async_httpx2_client() as http_async:
            client = _gemini(meter, provider, http_async).aio
            with meter.attribute(user="carol"):
                await client.models.generate_content(model=FLASH, contents="hi")
                return "".join(
                    [
                        c.text or ""
                        async for c in await client.models.generate_content_stream(model=FLASH, contents="hi")
                    ]
                )

    assert asyncio.run(calls()) == "Hello!"
    by_stream = {row["stream"]: row for row in rows(meter)}
    assert (by_stream[False]["output_tokens"], by_stream[True]["output_tokens"]) == (3, 9)
    assert {row["user_id"] for row in by_stream.values()} == {"carol"}


def _azure(meter: Meter, provider: FakeProvider) -> openai.AzureOpenAI:
    """Closed by the test's ``with`` block."""
    return openai.AzureOpenAI(
        azure_endpoint=_root(provider),
        api_key="azure-app-key",
        api_version=API_VERSION,
        http_client=meter.httpx2_client(),
        max_retries=0,
    )


def test_an_azure_deployment_is_priced_by_its_mapped_model(meter: Meter, provider: FakeProvider) -> None:
    body = chat_completion(model="gpt-4o-mini-2024-07-18", prompt_tokens=1000, completion_tokens=100)
    provider.answer("POST", CHAT, json_answer(body))
    with meter.attribute(user="alice"), _azure(meter, provider) as client:
        client.chat.completions.create(model="prod-mini", messages=[{"role": "user", "content": "hi"}])
    [sent] = provider.requests
    assert (sent.query, sent.header(b"api-key")) == (f"api-version={API_VERSION}".encode(), b"azure-app-key")
    [row] = rows(meter)
    assert (row["provider"], row["provider_kind"], row["model_requested"]) == ("fake-azure", "azure", "prod-mini")
    # azure/gpt-4o-mini: $0.15/M input, $0.60/M output.
    assert Decimal(row["cost_pico"]) / 10**12 == (1000 * Decimal("0.15") + 100 * Decimal("0.6")) / M


def test_an_azure_stream_hides_the_usage_it_was_asked_for(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", CHAT, sse(_azure_chunks()))
    with _azure(meter, provider) as client:
        chunks = list(client.chat.completions.create(model="prod-mini", messages=[], stream=True))
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello!"
    [row] = rows(meter)
    assert (row["input_tokens"], row["output_tokens"], row["provider_kind"]) == (11, 3, "azure")
