"""Any usage any dialect reads prices without an exception, never negative, its cost the sum of its parts."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing import Catalog, cost_to_pico, price_usage
from proxy.dialects.anthropic import Anthropic
from proxy.dialects.gemini import Gemini
from proxy.dialects.media import IMAGES, SPEECH, TRANSCRIPTION, MediaFacts, usage_of
from proxy.dialects.openai import OpenAI
from proxy.usage import clamp_usage

_CATALOG = Catalog.load()
_COUNT = st.one_of(
    st.integers(min_value=-5, max_value=2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.none(),
)
_KEYS = [
    "prompt_tokens",
    "completion_tokens",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "audio_tokens",
    "reasoning_tokens",
    "image_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "web_search_requests",
    "web_fetch_requests",
    "promptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "cachedContentTokenCount",
    "toolUsePromptTokenCount",
    "seconds",
    "type",
]
_TABLE = st.dictionaries(st.sampled_from(_KEYS), _COUNT, max_size=8)
_USAGE = st.fixed_dictionaries(
    {},
    optional={
        key: _TABLE if key.endswith(("details", "use")) else _COUNT
        for key in [
            *_KEYS,
            "prompt_tokens_details",
            "completion_tokens_details",
            "input_tokens_details",
            "output_tokens_details",
            "input_token_details",
            "server_tool_use",
        ]
    },
)
_ITEM = st.fixed_dictionaries(
    {"type": st.sampled_from(["web_search_call", "file_search_call", "code_interpreter_call", "message", "x"])},
    optional={"container_id": st.sampled_from(["c1", "c2", 3])},
)
_ANSWER = st.fixed_dictionaries(
    {"usage": _USAGE},
    optional={
        "output": st.lists(_ITEM, max_size=6),
        "tools": st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.just("web_search"),
                    "search_context_size": st.sampled_from(["low", "medium", "high", "huge", 1]),
                }
            ),
            max_size=2,
        ),
        "choices": st.lists(
            st.fixed_dictionaries(
                {
                    "message": st.fixed_dictionaries(
                        {
                            "annotations": st.lists(
                                st.fixed_dictionaries({"type": st.sampled_from(["url_citation", "file_citation"])}),
                                max_size=3,
                            )
                        }
                    )
                }
            ),
            max_size=3,
        ),
        "usageMetadata": _USAGE,
        "candidates": st.lists(
            st.fixed_dictionaries(
                {
                    "groundingMetadata": st.fixed_dictionaries(
                        {"webSearchQueries": st.lists(st.text(max_size=3), max_size=4)}
                    )
                }
            ),
            max_size=2,
        ),
        "data": st.lists(st.just({"b64_json": "A"}), max_size=3),
        "size": st.sampled_from(["1024x1024", "1536x1024", "auto", "bad"]),
        "quality": st.sampled_from(["high", "low", "hd", "auto"]),
        "duration": _COUNT,
        "service_tier": st.sampled_from(["priority", "flex", "batch", "default"]),
    },
)
_MODELS = {
    "openai": ["gpt-5", "gpt-4o-search-preview", "gpt-4.1", "gpt-image-1", "gpt-4o-transcribe", "whisper-1", "tts-1"],
    "anthropic": ["claude-sonnet-4-5", "claude-haiku-4-5"],
    "gemini": ["gemini/gemini-2.5-flash", "gemini-3.1-flash-lite-preview"],
}
_DIALECTS = {"openai": OpenAI(), "anthropic": Anthropic(), "gemini": Gemini()}


def _assert_priced(usage: Any, model: str, kind: str) -> None:
    card = _CATALOG.lookup(model)
    assert card is not None
    usage, _ = clamp_usage(usage, card)
    priced = price_usage(card, usage.tokens, usage.units, usage.service_tier, lookup=_CATALOG.lookup, kind=kind)
    parts = [priced.tokens.total, *priced.units.parts.values()]
    assert all(part >= 0 for part in parts)
    assert all(getattr(priced.tokens, name) >= 0 for name in ("input", "cached_input", "cache_write", "output"))
    assert cost_to_pico(priced.total) == sum(cost_to_pico(part) for part in parts)


@settings(max_examples=300, deadline=None)
@given(answer=_ANSWER, kind=st.sampled_from(sorted(_DIALECTS)), data=st.data())
def test_any_answer_of_any_dialect_prices_exactly(answer: dict[str, Any], kind: str, data: st.DataObject) -> None:
    if kind == "anthropic":
        answer = {**answer, "type": "message"}
    usage = _DIALECTS[kind].usage_from_body(orjson.dumps(answer))
    if usage is not None:
        _assert_priced(usage, data.draw(st.sampled_from(_MODELS[kind])), kind)


@settings(max_examples=200, deadline=None)
@given(
    answer=_ANSWER,
    kind=st.sampled_from([IMAGES, SPEECH, TRANSCRIPTION]),
    model=st.sampled_from(["gpt-image-1", "whisper-1", "tts-1", "gpt-4o-transcribe"]),
    characters=st.integers(min_value=0, max_value=10_000),
    audio_ms=st.one_of(st.none(), st.integers(min_value=0, max_value=10**8)),
)
def test_any_media_answer_prices_exactly(
    answer: dict[str, Any], kind: str, model: str, characters: int, audio_ms: int | None
) -> None:
    media = MediaFacts(kind, characters=characters, audio_ms=audio_ms, upload_bytes=characters * 7)
    usage, _ = usage_of(media, model, orjson.dumps(answer))
    _assert_priced(usage, model, "openai")
