"""Gemini usage into Tollgate's columns: real payloads, one row per documented rule, and any JSON at all."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing import TokenCounts
from proxy.dialects.base import RequestFacts
from proxy.dialects.gemini import EMBED, GENERATE, STREAM, Gemini, usage_from_body, usage_from_metadata
from proxy.sse import StreamMeter


@pytest.mark.parametrize(
    ("metadata", "tokens"),
    [
        ({"promptTokenCount": 8, "candidatesTokenCount": 12, "totalTokenCount": 20}, TokenCounts(input=8, output=12)),
        # promptTokenCount includes the cached tokens: they are a part of input, not added to it.
        (
            {"promptTokenCount": 5000, "cachedContentTokenCount": 4096, "candidatesTokenCount": 10},
            TokenCounts(input=5000, cached_input=4096, output=10),
        ),
        # Thoughts are billed as output and are not inside candidatesTokenCount.
        (
            {"promptTokenCount": 9, "candidatesTokenCount": 30, "thoughtsTokenCount": 250, "totalTokenCount": 289},
            TokenCounts(input=9, output=280, reasoning=250),
        ),
        # Tool-use prompt tokens are input, outside promptTokenCount.
        (
            {"promptTokenCount": 100, "toolUsePromptTokenCount": 40, "candidatesTokenCount": 3},
            TokenCounts(input=140, output=3),
        ),
        # Audio prompt tokens are a part of input, priced at their rate.
        (
            {
                "promptTokenCount": 300,
                "promptTokensDetails": [
                    {"modality": "TEXT", "tokenCount": 50},
                    {"modality": "AUDIO", "tokenCount": 250},
                ],
                "candidatesTokenCount": 1,
            },
            TokenCounts(input=300, audio_input=250, output=1),
        ),
        # A chunk before any answer: only the prompt counted so far.
        ({"promptTokenCount": 7}, TokenCounts(input=7)),
        ({"promptTokenCount": "7", "candidatesTokenCount": -1, "thoughtsTokenCount": True}, TokenCounts()),
    ],
)
def test_usage_metadata(metadata: dict[str, Any], tokens: TokenCounts) -> None:
    usage = usage_from_metadata(metadata)
    assert usage is not None and usage.tokens == tokens


def test_an_answer_gives_its_model_version_and_raw_usage() -> None:
    metadata = {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}
    body = orjson.dumps(
        {
            "candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}, "finishReason": "STOP"}],
            "usageMetadata": metadata,
            "modelVersion": "gemini-2.5-flash",
            "responseId": "abc",
        }
    )
    usage = usage_from_body(body)
    assert usage is not None and (usage.model, usage.provider_usage) == ("gemini-2.5-flash", metadata)


def test_a_streamed_json_array_takes_its_last_totals() -> None:
    chunks = [
        {"candidates": [{"content": {"parts": [{"text": "a"}]}}], "usageMetadata": {"promptTokenCount": 4}},
        {
            "candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6},
        },
    ]
    usage = usage_from_body(b"[" + b",\r\n".join(orjson.dumps(c) for c in chunks) + b"]")
    assert usage is not None and usage.tokens == TokenCounts(input=4, output=6)


def test_sse_chunks_carry_running_totals_the_last_wins() -> None:
    meter = StreamMeter(Gemini().stream_reader(False))
    for metadata in (
        {"promptTokenCount": 4, "candidatesTokenCount": 1},
        {"promptTokenCount": 4, "candidatesTokenCount": 9},
    ):
        meter.feed(b"data: " + orjson.dumps({"usageMetadata": metadata}) + b"\r\n\r\n")
    assert meter.usage is not None and meter.usage.tokens == TokenCounts(input=4, output=9)


@pytest.mark.parametrize(
    ("method", "path", "headers", "kind"),
    [
        ("POST", "/v1beta/models/gemini-2.5-flash:generatecontent", [], "gemini"),
        ("POST", "/v1/models/gemini-2.5-flash:streamgeneratecontent", [], "gemini"),
        ("GET", "/v1/models/gpt-4o", [], "openai"),
        ("GET", "/v1/models", [], "openai"),
        ("GET", "/v1/models", [(b"anthropic-version", b"2023-06-01")], "anthropic"),
        ("GET", "/v1/cachedcontents", [(b"x-goog-api-key", b"k")], "gemini"),
        ("POST", "/v1/messages", [], "anthropic"),
        ("POST", "/v1/chat/completions", [], "openai"),
    ],
)
def test_each_request_goes_to_the_api_whose_paths_it_uses(
    method: str, path: str, headers: list[tuple[bytes, bytes]], kind: str
) -> None:
    from proxy.dialects import dialect_for

    dialect = dialect_for(path, method, headers)
    assert dialect is not None and dialect.kind == kind


@pytest.mark.parametrize(
    ("path", "endpoint", "model"),
    [
        ("/v1beta/models/gemini-2.5-pro:generateContent", GENERATE, "gemini-2.5-pro"),
        ("/v1/models/gemini-2.5-pro:streamGenerateContent", STREAM, "gemini-2.5-pro"),
        ("/v1beta/models/gemini-embedding-001:batchEmbedContents", EMBED, "gemini-embedding-001"),
        ("/v1beta/models/gemini-2.5-pro:countTokens", None, "gemini-2.5-pro"),
        ("/v1beta/models", None, None),
    ],
)
def test_paths_name_the_endpoint_and_model(path: str, endpoint: Any, model: str | None) -> None:
    gemini = Gemini()
    assert gemini.endpoint("POST", path.lower()) == endpoint
    assert gemini.model_in_path(path) == model


def test_a_request_bound_reads_max_output_tokens_and_candidates() -> None:
    payload = {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": "AA"}}]}
        ],
        "generationConfig": {"maxOutputTokens": 256, "candidateCount": 2},
    }
    facts = Gemini().read_request(STREAM, payload)
    assert facts == RequestFacts(model=None, stream=True, output_cap=256, choices=2, media_parts=1)


@pytest.mark.parametrize(
    ("query", "managed", "sent"),
    [
        (b"alt=sse&key=tg-1", True, b"alt=sse"),
        (b"key=tg-1", True, b""),
        (b"alt=sse&key=AIza", False, b"alt=sse&key=AIza"),
        (b"alt=sse", True, b"alt=sse"),
    ],
)
def test_a_managed_keys_query_key_stays_in_tollgate(query: bytes, managed: bool, sent: bytes) -> None:
    assert Gemini().upstream_query(query, managed) == sent


def test_the_key_is_read_from_the_header_or_the_query() -> None:
    gemini = Gemini()
    assert gemini.client_key([(b"x-goog-api-key", b"h")], b"key=q") == "h"
    assert gemini.client_key([], b"alt=sse&key=q") == "q"
    assert gemini.client_key([], b"alt=sse") is None


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
                    "usageMetadata",
                    "promptTokenCount",
                    "candidatesTokenCount",
                    "thoughtsTokenCount",
                    "cachedContentTokenCount",
                    "toolUsePromptTokenCount",
                    "promptTokensDetails",
                    "modality",
                    "tokenCount",
                    "modelVersion",
                    "candidates",
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
    for usage in (usage_from_metadata(value), usage_from_body(orjson.dumps(value))):
        assert usage is None or min(dataclasses.astuple(usage.tokens)) >= 0


@given(st.lists(_JSON, max_size=5))
def test_any_stream_reads_without_error(values: list[Any]) -> None:
    meter = StreamMeter(Gemini().stream_reader(False))
    for value in values:
        meter.feed(b"data: " + orjson.dumps({"usageMetadata": value}) + b"\n\n")
    meter.finish()
    assert meter.usage is None or min(dataclasses.astuple(meter.usage.tokens)) >= 0
