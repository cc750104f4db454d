"""The official google-genai SDK, pointed at Tollgate's root, behaves as against Gemini, and each call is one row."""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from google import genai
from google.genai import errors, types

from tests.conftest import json_answer, sse
from tests.dialects.conftest import LiveTollgate
from tests.fakeprovider import FakeProvider

FLASH = "gemini-2.5-flash"
# Version 1 of the API is what google-genai calls when given a base URL.
GENERATE = f"/v1/models/{FLASH}:generateContent"
STREAM = f"/v1/models/{FLASH}:streamGenerateContent"
M = Decimal(10**6)


def _client(live: LiveTollgate, user: str | None = None, api_key: str = "AIza-client") -> genai.Client:
    headers = {"X-User-Id": user} if user else {}
    return genai.Client(api_key=api_key, http_options=types.HttpOptions(base_url=live.url, headers=headers))


def _answer(metadata: dict[str, Any], text: str = "Hello", model: str = FLASH, finish: bool = True) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    return {"candidates": [candidate], "usageMetadata": metadata, "modelVersion": model, "responseId": "r1"}


def test_generate_content_with_thoughts_and_cache_is_priced_exactly(live: LiveTollgate, provider: FakeProvider) -> None:
    metadata = {
        "promptTokenCount": 1200,
        "cachedContentTokenCount": 1000,
        "candidatesTokenCount": 40,
        "thoughtsTokenCount": 300,
        "totalTokenCount": 1540,
    }
    provider.answer("POST", GENERATE, json_answer(orjson.dumps(_answer(metadata, text="Bonjour"))))
    client = _client(live, user="alice")
    answer = client.models.generate_content(model=FLASH, contents="hi")
    assert answer.text == "Bonjour"
    [sent] = provider.requests
    assert sent.header(b"x-goog-api-key") == b"AIza-client" and sent.header(b"x-user-id") is None
    [row] = live.rows()
    assert (row["provider"], row["provider_kind"], row["user_id"]) == ("fake-gemini", "gemini", "alice")
    assert (row["input_tokens"], row["cached_input_tokens"]) == (1200, 1000)
    assert (row["output_tokens"], row["reasoning_tokens"]) == (340, 300)
    # gemini/gemini-2.5-flash: input $0.30/M, cached $0.03/M, output and thinking $2.50/M.
    expected = (200 * Decimal("0.3") + 1000 * Decimal("0.03") + 340 * Decimal("2.5")) / M
    assert Decimal(row["cost_pico"]) / 10**12 == expected


def test_the_above_200k_tier_prices_the_whole_request(live: LiveTollgate, provider: FakeProvider) -> None:
    metadata = {"promptTokenCount": 250_000, "candidatesTokenCount": 1000, "totalTokenCount": 251_000}
    answer = orjson.dumps(_answer(metadata, model="gemini-2.5-pro"))
    provider.answer("POST", "/v1/models/gemini-2.5-pro:generateContent", json_answer(answer))
    client = _client(live)
    client.models.generate_content(model="gemini-2.5-pro", contents="a long prompt")
    [row] = live.rows()
    # gemini/gemini-2.5-pro above 200k tokens: input $2.50/M and output $15/M, on every token.
    assert Decimal(row["cost_pico"]) / 10**12 == (250_000 * Decimal("2.5") + 1000 * Decimal(15)) / M


def _sse_chunks(separator: bytes = b"\r\n\r\n") -> tuple[bytes, ...]:
    chunks = [
        _answer({"promptTokenCount": 6, "totalTokenCount": 6}, text="Hel", finish=False),
        _answer({"promptTokenCount": 6, "candidatesTokenCount": 2, "totalTokenCount": 8}, text="lo", finish=False),
        _answer({"promptTokenCount": 6, "candidatesTokenCount": 4, "thoughtsTokenCount": 5}, text="!"),
    ]
    return tuple(b"data: " + orjson.dumps(c) + separator for c in chunks)


@pytest.mark.parametrize("separator", [b"\r\n\r\n", b"\n\n"])
def test_stream_takes_the_last_running_totals(live: LiveTollgate, provider: FakeProvider, separator: bytes) -> None:
    provider.answer("POST", STREAM, sse(_sse_chunks(separator)))
    client = _client(live)
    chunks = list(client.models.generate_content_stream(model=FLASH, contents="hi"))
    assert "".join(c.text or "" for c in chunks) == "Hello!"
    assert provider.requests[0].query == b"alt=sse"
    [row] = live.rows()
    assert (row["input_tokens"], row["output_tokens"], row["reasoning_tokens"]) == (6, 9, 5)
    assert (row["stream"], row["usage_source"]) == (True, "reported")


def test_a_streamed_json_array_is_relayed_and_metered(live: LiveTollgate, provider: FakeProvider) -> None:
    chunks = [
        _answer({"promptTokenCount": 3}, finish=False),
        _answer({"promptTokenCount": 3, "candidatesTokenCount": 8}),
    ]
    body = b"[" + b"\r\n,\r\n".join(orjson.dumps(c, option=orjson.OPT_INDENT_2) for c in chunks) + b"]"
    provider.answer("POST", f"/v1beta/models/{FLASH}:streamGenerateContent", json_answer(body))
    url = f"{live.url}/v1beta/models/{FLASH}:streamGenerateContent"
    answer = httpx.post(url, json={"contents": [{"parts": [{"text": "hi"}]}]}, headers={"x-goog-api-key": "k"})
    assert answer.content == body
    [row] = live.rows()
    assert (row["input_tokens"], row["output_tokens"], row["stream"]) == (3, 8, True)


def test_a_streamed_json_array_reaches_the_client_as_it_arrives(live: LiveTollgate, provider: FakeProvider) -> None:
    first = b"[" + orjson.dumps(_answer({"promptTokenCount": 3}, text="Hel", finish=False))
    metadata = {"promptTokenCount": 3, "candidatesTokenCount": 8, "thoughtsTokenCount": 2}
    last = orjson.dumps(_answer(metadata, text="lo"), option=orjson.OPT_INDENT_2)
    rest = (b"\r\n,\r\n" + last[:25], last[25:] + b"\r\n]")
    gate = threading.Event()  # the provider sends the rest only once the client has had the first item
    path = f"/v1beta/models/{FLASH}:streamGenerateContent"
    provider.answer("POST", path, json_answer(b"", chunks=(first, *rest), gate=gate))
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    try:
        with httpx.stream("POST", live.url + path, json=body, headers={"x-goog-api-key": "k"}, timeout=5) as answer:
            pieces = answer.iter_raw()
            received = b""
            while len(received) < len(first):
                received += next(pieces)  # a Tollgate that waited for the whole array would time out here
            assert received == first
            gate.set()
            assert b"".join(pieces) == b"".join(rest)
    finally:
        gate.set()
    [row] = live.rows()
    assert (row["input_tokens"], row["output_tokens"], row["reasoning_tokens"]) == (3, 10, 2)
    assert (row["stream"], row["usage_source"]) == (True, "reported")


def test_a_json_array_cut_short_keeps_what_arrived(live: LiveTollgate, provider: FakeProvider) -> None:
    first = b"[" + orjson.dumps(_answer({"promptTokenCount": 3, "candidatesTokenCount": 1}, finish=False))
    path = f"/v1beta/models/{FLASH}:streamGenerateContent"
    provider.answer("POST", path, json_answer(b"", chunks=(first, b",{"), drop_after=1))
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    answer = httpx.post(live.url + path, json=body, headers={"x-goog-api-key": "k"})
    assert answer.content == first
    [row] = live.rows()
    assert (row["input_tokens"], row["output_tokens"], row["error_type"]) == (3, 1, "upstream_unavailable")


def test_embeddings_are_estimated_when_gemini_reports_no_usage(live: LiveTollgate, provider: FakeProvider) -> None:
    path = "/v1/models/gemini-embedding-001:batchEmbedContents"
    provider.answer("POST", path, json_answer(b'{"embeddings": [{"values": [0.1, 0.2]}]}'))
    client = _client(live)
    result = client.models.embed_content(model="gemini-embedding-001", contents="hello world")
    assert result.embeddings is not None and result.embeddings[0].values == [0.1, 0.2]
    [row] = live.rows()
    assert (row["usage_source"], row["output_tokens"]) == ("estimated", 0)
    assert row["input_tokens"] > 0 and row["cost_pico"] > 0 and not row["unpriced"]


def test_count_tokens_is_forwarded_with_no_tokens(live: LiveTollgate, provider: FakeProvider) -> None:
    provider.answer("POST", f"/v1/models/{FLASH}:countTokens", json_answer(b'{"totalTokens": 5}'))
    client = _client(live)
    assert client.models.count_tokens(model=FLASH, contents="hi").total_tokens == 5
    [row] = live.rows()
    assert (row["usage_source"], row["model_requested"], row["provider"]) == ("none", FLASH, "fake-gemini")


def test_a_key_in_the_query_never_reaches_a_row_a_log_or_an_error(
    live: LiveTollgate, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "AIzaSECRETkey123"
    error = b'{"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}'
    provider.answer("POST", f"/v1beta/models/{FLASH}:generateContent", json_answer(error, status=500))
    with caplog.at_level(logging.DEBUG):
        answer = httpx.post(
            f"{live.url}/v1beta/models/{FLASH}:generateContent?key={secret}",
            json={"contents": [{"parts": [{"text": "hi"}]}]},
        )
    assert answer.status_code == 500 and provider.requests[0].query == f"key={secret}".encode()
    [row] = live.rows()
    # The test's own HTTP client logs its URL; Tollgate's side (its loggers, uvicorn's, aiohttp's) must not.
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    assert secret not in repr(row) and secret not in logged and secret not in answer.text


@pytest.mark.parametrize(("status", "exception"), [(400, errors.ClientError), (503, errors.ServerError)])
def test_upstream_errors_raise_the_sdk_error(
    live: LiveTollgate, provider: FakeProvider, status: int, exception: type[Exception]
) -> None:
    body = orjson.dumps({"error": {"code": status, "message": "upstream says no", "status": "X"}})
    provider.answer("POST", GENERATE, json_answer(body, status=status))
    with pytest.raises(exception, match="upstream says no"):
        client = _client(live)
        client.models.generate_content(model=FLASH, contents="hi")
    assert live.rows()[0]["status"] == status


def test_spend_limit_refusal_is_geminis_error(live_tollgate_factory: Any, provider: FakeProvider) -> None:
    limits = '[[limits]]\nscope = "user"\nwindow = "day"\nmax_usd = "0.000001"\n'
    live: LiveTollgate = live_tollgate_factory(limits)
    config = types.GenerateContentConfig(max_output_tokens=1000)
    with pytest.raises(errors.ClientError) as raised:
        client = _client(live, user="carol")
        client.models.generate_content(model=FLASH, contents="hi", config=config)
    assert (raised.value.code, raised.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert raised.value.response is not None
    assert provider.requests == []
    [row] = live.rows()
    assert (row["status"], row["provider_kind"], row["user_id"]) == (429, "gemini", "carol")


def test_spend_limit_refusal_carries_x_should_retry_false(live_tollgate_factory: Any, provider: FakeProvider) -> None:
    live: LiveTollgate = live_tollgate_factory('[[limits]]\nscope = "global"\nwindow = "day"\nmax_usd = "0.000001"\n')
    body = {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 100}}
    answer = httpx.post(f"{live.url}/v1beta/models/{FLASH}:generateContent", json=body, headers={"x-goog-api-key": "k"})
    assert answer.status_code == 429 and answer.headers["x-should-retry"] == "false"
    assert set(answer.json()["error"]) == {"code", "message", "status"}
