"""Units beyond tokens are counted from what an answer shows was used, and priced exactly."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from pricing import Catalog, UnitCounts, price_usage
from proxy.dialects.anthropic import Anthropic
from proxy.dialects.gemini import Gemini
from proxy.dialects.openai import OpenAI
from proxy.usage import Usage
from tests.pricing.cards import real_card


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def _responses(output: list[dict[str, Any]], tools: list[dict[str, Any]]) -> bytes:
    usage = {"input_tokens": 1200, "output_tokens": 300, "output_tokens_details": {"reasoning_tokens": 0}}
    return orjson.dumps(
        {
            "object": "response",
            "model": "gpt-5-2025-08-07",
            "status": "completed",
            "output": output,
            "tools": tools,
            "usage": usage,
        }
    )


_SEARCH: dict[str, Any] = {
    "type": "web_search_call",
    "id": "ws_1",
    "status": "completed",
    "action": {"type": "search", "query": "q"},
}
_MESSAGE: dict[str, Any] = {
    "type": "message",
    "id": "msg_1",
    "role": "assistant",
    "content": [{"type": "output_text", "text": "hi"}],
}


def _usage(body: bytes, dialect: OpenAI | Anthropic | Gemini) -> Usage:
    usage = dialect.usage_from_body(body)
    assert usage is not None
    return usage


def test_responses_web_searches_are_counted_from_their_output_items(catalog: Catalog) -> None:
    body = _responses(
        [_SEARCH, {**_SEARCH, "id": "ws_2"}, _MESSAGE], [{"type": "web_search", "search_context_size": "high"}]
    )
    usage = _usage(body, OpenAI())
    assert usage.units == UnitCounts(web_search_calls=2, search_context_size="high")
    priced = price_usage(real_card(catalog, "gpt-5"), usage.tokens, usage.units)
    # 1,200 x $1.25/1M + 300 x $10/1M + 2 searches x $0.01 (gpt-5's search_context_cost_per_query)
    assert priced.total == Decimal("0.0015") + Decimal("0.003") + Decimal("0.02")


def test_a_declared_web_search_that_never_ran_counts_nothing() -> None:
    usage = _usage(_responses([_MESSAGE], [{"type": "web_search"}]), OpenAI())
    assert not usage.units


def test_file_searches_and_container_sessions_are_counted(catalog: Catalog) -> None:
    calls: list[dict[str, Any]] = [
        {"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["a"]},
        {"type": "file_search_call", "id": "fs_2", "status": "completed", "queries": ["b"]},
        {"type": "code_interpreter_call", "id": "ci_1", "container_id": "cntr_1", "code": "1+1", "status": "completed"},
        {"type": "code_interpreter_call", "id": "ci_2", "container_id": "cntr_1", "code": "2+2", "status": "completed"},
        _MESSAGE,
    ]
    usage = _usage(_responses(calls, [{"type": "file_search"}, {"type": "code_interpreter"}]), OpenAI())
    assert usage.units == UnitCounts(file_search_calls=2, container_sessions=1)
    priced = price_usage(real_card(catalog, "gpt-4.1"), usage.tokens, usage.units, lookup=catalog.lookup)
    assert dict(priced.units.parts) == {"file_search_calls": Decimal("0.005"), "container_sessions": Decimal("0.03")}


def test_chat_search_models_count_a_search_per_cited_choice(catalog: Catalog) -> None:
    citation = {
        "type": "url_citation",
        "url_citation": {"url": "https://example.com", "title": "t", "start_index": 0, "end_index": 4},
    }
    body = orjson.dumps(
        {
            "object": "chat.completion",
            "model": "gpt-4o-search-preview-2025-03-11",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "text", "annotations": [citation]},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 100, "total_tokens": 110},
        }
    )
    usage = _usage(body, OpenAI())
    assert usage.units.web_search_calls == 1
    priced = price_usage(real_card(catalog, "gpt-4o-search-preview"), usage.tokens, usage.units)
    assert priced.total == Decimal("0.000025") + Decimal("0.001") + Decimal("0.025")


def test_a_chat_stream_counts_the_citations_its_deltas_carry() -> None:
    reader = OpenAI().stream_reader(hide_usage=False)
    cite = {"choices": [{"index": 0, "delta": {"annotations": [{"type": "url_citation", "url_citation": {}}]}}]}
    final = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7}}
    for obj in (cite, final):
        reader.read(b"data: " + orjson.dumps(obj) + b"\n\n")
    assert reader.usage is not None and reader.usage.units.web_search_calls == 1


def test_anthropic_server_tool_use_counts_searches_and_fetches(catalog: Catalog) -> None:
    usage_object = {
        "input_tokens": 2000,
        "output_tokens": 500,
        "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 1},
    }
    body = orjson.dumps(
        {
            "type": "message",
            "model": "claude-sonnet-4-5-20250929",
            "usage": usage_object,
            "content": [{"type": "text", "text": "hi"}],
        }
    )
    usage = _usage(body, Anthropic())
    assert usage.units == UnitCounts(web_search_calls=3, server_tool_requests=1)
    priced = price_usage(real_card(catalog, "claude-sonnet-4-5"), usage.tokens, usage.units)
    assert priced.total == Decimal("0.006") + Decimal("0.0075") + Decimal("0.03")


def test_an_anthropic_stream_keeps_the_last_server_tool_count() -> None:
    reader = Anthropic().stream_reader(hide_usage=False)
    start = {
        "type": "message_start",
        "message": {"model": "claude-sonnet-4-5", "usage": {"input_tokens": 9, "output_tokens": 1}},
    }
    delta = {"type": "message_delta", "usage": {"output_tokens": 40, "server_tool_use": {"web_search_requests": 2}}}
    for obj in (start, delta):
        reader.read(b"event: " + obj["type"].encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n")  # type: ignore[attr-defined]
    assert reader.usage is not None and reader.usage.units.web_search_calls == 2


_GROUNDED = {
    "candidates": [
        {
            "content": {"parts": [{"text": "It is sunny."}], "role": "model"},
            "finishReason": "STOP",
            "groundingMetadata": {
                "webSearchQueries": ["weather paris", "paris forecast"],
                "groundingChunks": [{"web": {"uri": "https://example.com", "title": "x"}}],
            },
        }
    ],
    "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 20, "totalTokenCount": 120},
    "modelVersion": "gemini-2.5-flash",
}


def test_gemini_grounding_queries_are_counted_and_billed_per_grounded_prompt(catalog: Catalog) -> None:
    usage = _usage(orjson.dumps(_GROUNDED), Gemini())
    assert usage.units == UnitCounts(grounding_queries=2)
    priced = price_usage(real_card(catalog, "gemini/gemini-2.5-flash"), usage.tokens, usage.units)
    assert priced.total == Decimal("0.00003") + Decimal("0.00005") + Decimal("0.035")


@pytest.mark.parametrize("split", [True, False])
def test_a_gemini_stream_keeps_grounding_from_any_chunk(split: bool) -> None:
    reader = Gemini().stream_reader(hide_usage=False)
    if split:  # grounding in a chunk of its own, usage in the next
        chunks = [{"candidates": _GROUNDED["candidates"]}, {"usageMetadata": _GROUNDED["usageMetadata"]}]
    else:
        chunks = [_GROUNDED]
    for chunk in chunks:
        reader.read(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
    assert reader.usage is not None and reader.usage.units.grounding_queries == 2


def test_a_streamed_image_is_priced_by_its_image_tokens(catalog: Catalog) -> None:
    reader = OpenAI().stream_reader(hide_usage=False)
    done = {
        "type": "image_generation.completed",
        "b64_json": "AAAA",
        "size": "1024x1024",
        "quality": "high",
        "usage": {
            "input_tokens": 40,
            "output_tokens": 4160,
            "input_tokens_details": {"text_tokens": 40, "image_tokens": 0},
        },
    }
    reader.read(b"event: image_generation.completed\ndata: " + orjson.dumps(done) + b"\n\n")
    assert reader.usage is not None
    priced = price_usage(real_card(catalog, "gpt-image-1"), reader.usage.tokens, reader.usage.units)
    assert priced.total == Decimal(40) * Decimal("5e-6") + Decimal(4160) * Decimal("4e-5")


def test_streamed_speech_output_tokens_are_audio() -> None:
    reader = OpenAI().stream_reader(hide_usage=False)
    done = {"type": "speech.audio.done", "usage": {"input_tokens": 14, "output_tokens": 101, "total_tokens": 115}}
    reader.read(b"data: " + orjson.dumps(done) + b"\n\n")
    assert reader.usage is not None and reader.usage.tokens.audio_output == 101
