"""Counted prompts: never above the byte bound, never below what the model reads."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.limits.prompt_count import MESSAGE_TOKENS, REPLY_TOKENS, cache_marks, count_openai
from proxy.limits.provider_count import (
    anthropic_count,
    gemini_count,
    read_anthropic_count,
    read_gemini_count,
    with_margin,
)
from proxy.limits.tokenizer import Encoding, encoding, encoding_name, on_disk

TEXT = "The quick brown fox jumps over the lazy dog. " * 40


@pytest.fixture(scope="module")
def o200k() -> Encoding:
    found = encoding("o200k_base")
    assert found is not None, "the litellm wheel ships o200k_base"
    return found


def _cookbook_count(enc: Encoding, messages: list[dict[str, str]]) -> int:
    """The chat format's own count: 3 tokens per message, 1 per name, each value's tokens, 3 for the reply."""
    return sum(3 + sum(len(enc.encode_ordinary(v)) for v in m.values()) + ("name" in m) for m in messages) + 3


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "hi"}],
        [{"role": "system", "content": TEXT}, {"role": "user", "content": "Summarise.", "name": "alice"}],
        [{"role": "user", "content": "naïve café ☕ " * 50}, {"role": "assistant", "content": TEXT}],
    ],
)
def test_the_count_covers_the_chat_format_and_stays_under_the_byte_bound(
    o200k: Encoding, messages: list[dict[str, str]]
) -> None:
    body = orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 10, "messages": messages})
    counted = count_openai(orjson.loads(body), len(body), o200k, 3000)
    assert _cookbook_count(o200k, messages) <= counted.tokens <= len(body)


def test_english_text_is_bounded_far_below_one_token_per_byte(o200k: Encoding) -> None:
    body = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": TEXT}]})
    counted = count_openai(orjson.loads(body), len(body), o200k, 3000)
    assert counted.tokens < len(body) / 3


def test_an_image_counts_its_allowance_not_its_bytes(o200k: Encoding) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 20_000}}
    payload: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": [image]}]}
    body = orjson.dumps(payload)
    counted = count_openai(payload, len(body), o200k, 3000)
    assert counted.media == 3000
    assert counted.tokens < 200


def test_what_it_cannot_read_stays_at_one_token_per_byte(o200k: Encoding) -> None:
    tools = [{"type": "function", "function": {"name": "f", "description": TEXT, "parameters": {}}}]
    payload = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "tools": tools}
    body = orjson.dumps(payload)
    counted = count_openai(payload, len(body), o200k, 3000)
    assert counted.tokens >= len(orjson.dumps(tools)) + MESSAGE_TOKENS + REPLY_TOKENS


def test_responses_input_and_instructions_are_counted(o200k: Encoding) -> None:
    payload = {"model": "gpt-5", "instructions": TEXT, "input": [{"role": "user", "content": TEXT}]}
    body = orjson.dumps(payload)
    counted = count_openai(payload, len(body), o200k, 3000)
    assert 2 * len(o200k.encode_ordinary(TEXT)) < counted.tokens < len(body) / 3


@pytest.mark.parametrize(
    ("model", "name"),
    [("gpt-4o-mini", "o200k_base"), ("openai/gpt-5", "o200k_base"), ("gpt-4", "cl100k_base"), ("llama-3", None)],
)
def test_the_encoding_follows_the_model(model: str, name: str | None) -> None:
    assert encoding_name(model) == name


def test_an_encoding_not_on_disk_is_unavailable_without_a_download() -> None:
    assert on_disk("o200k_base") and on_disk("cl100k_base")
    assert not on_disk("r50k_base")
    assert encoding("r50k_base") is None


def _blocks(text: str, mark: dict[str, str] | None = None) -> list[dict[str, Any]]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if mark is not None:
        block["cache_control"] = mark
    return [block]


def test_without_cache_control_nothing_may_be_written() -> None:
    assert cache_marks({"system": TEXT, "messages": [{"role": "user", "content": TEXT}]}).upto_last == 0


def test_the_written_prefix_ends_at_the_last_mark_and_the_1h_one_before_it() -> None:
    payload = {
        "system": _blocks(TEXT, {"type": "ephemeral", "ttl": "1h"}),
        "messages": [
            {"role": "user", "content": _blocks(TEXT, {"type": "ephemeral"})},
            {"role": "user", "content": _blocks(TEXT * 5)},
        ],
    }
    marks = cache_marks(payload)
    assert len(TEXT) < marks.upto_1h < 2 * len(TEXT) < marks.upto_last < 3 * len(TEXT)


def test_tools_bring_their_own_system_prompt_into_the_prefix() -> None:
    tools = [{"name": "f", "input_schema": {}, "cache_control": {"type": "ephemeral"}}]
    assert cache_marks({"tools": tools, "messages": []}).upto_last > 1024


def test_a_request_level_mark_may_write_the_whole_prompt() -> None:
    payload = {"cache_control": {"type": "ephemeral"}, "messages": [{"role": "user", "content": TEXT}]}
    assert cache_marks(payload).upto_last > len(TEXT)


def test_anthropic_counts_send_only_what_the_endpoint_takes() -> None:
    request = anthropic_count({"model": "m", "messages": [], "max_tokens": 5, "stream": True, "system": "s"})
    assert request.path == "/v1/messages/count_tokens"
    assert orjson.loads(request.body) == {"model": "m", "messages": [], "system": "s"}


def test_gemini_counts_wrap_the_request() -> None:
    request = gemini_count("/v1beta/models/gemini-2.5-pro:generateContent", {"contents": []}, "gemini-2.5-pro")
    assert request is not None and request.path == "/v1beta/models/gemini-2.5-pro:countTokens"
    assert orjson.loads(request.body) == {"generateContentRequest": {"contents": [], "model": "models/gemini-2.5-pro"}}
    assert gemini_count("/v1beta/models/x", {}, "x") is None


@pytest.mark.parametrize(
    ("body", "anthropic", "gemini"),
    [
        (b'{"input_tokens": 1200}', 1200, None),
        (b'{"totalTokens": 7, "cachedContentTokenCount": 0}', None, 7),
        (b'{"input_tokens": 0}', 0, None),
        (b'{"input_tokens": -4}', None, None),
        (b"not json", None, None),
        (b"[1]", None, None),
    ],
)
def test_counts_are_read_from_the_answer(body: bytes, anthropic: int | None, gemini: int | None) -> None:
    assert (read_anthropic_count(body), read_gemini_count(body)) == (anthropic, gemini)


def test_a_provider_count_gets_its_margin() -> None:
    assert with_margin(1000) == 1020 + 64
