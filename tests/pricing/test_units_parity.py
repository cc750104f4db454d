"""Unit prices agree with litellm's own tool-cost tracking, wherever litellm prices the unit.

Where they differ on purpose (the provider's rule wins), the test says so and names the source.
litellm is imported here only: it takes seconds, and the server never does it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from decimal import Decimal
from types import ModuleType

import pytest

from pricing import Catalog, TokenCounts, UnitCounts, price_units
from tests.pricing.cards import real_card

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*using the `ReadOnly` qualifier:UserWarning"),
]
_CLOSE = Decimal("1e-12")


@pytest.fixture(scope="module")
def litellm() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        yield importlib.import_module("litellm")


def _tools() -> ModuleType:
    return importlib.import_module("litellm.litellm_core_utils.llm_cost_calc.tool_call_cost_tracking")


def _close(ours: Decimal, theirs: float) -> None:
    assert abs(ours - Decimal(theirs)) <= _CLOSE * max(Decimal(1), abs(Decimal(theirs))), f"{ours} != {theirs}"


@pytest.mark.parametrize("model", ["gpt-4o-search-preview", "gpt-4o-mini-search-preview", "gpt-5", "gpt-4.1"])
@pytest.mark.parametrize("size", ["low", "medium", "high"])
def test_web_search_per_call_matches_litellm(litellm: ModuleType, catalog: Catalog, model: str, size: str) -> None:
    info = litellm.get_model_info(model)
    if not info.get("search_context_cost_per_query"):
        pytest.skip(f"litellm has no web search price for {model}")
    theirs = _tools().StandardBuiltInToolCostTracking.get_cost_for_web_search({"search_context_size": size}, info)
    ours = price_units(real_card(catalog, model), UnitCounts(web_search_calls=1, search_context_size=size))
    _close(ours.parts["web_search_calls"], theirs)


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-opus-4-5", "claude-opus-4-6"])
def test_anthropic_web_search_requests_match_litellm(litellm: ModuleType, catalog: Catalog, model: str) -> None:
    calc = importlib.import_module("litellm.llms.anthropic.cost_calculation")
    types = importlib.import_module("litellm.types.utils")
    usage = types.Usage(
        prompt_tokens=1, completion_tokens=1, server_tool_use=types.ServerToolUse(web_search_requests=3)
    )
    theirs = calc.get_cost_for_anthropic_web_search(litellm.get_model_info(model), usage)
    _close(price_units(real_card(catalog, model), UnitCounts(web_search_calls=3)).parts["web_search_calls"], theirs)


@pytest.mark.parametrize("model", ["gemini/gemini-2.5-flash", "gemini/gemini-2.5-pro", "gemini-3.1-flash-lite-preview"])
@pytest.mark.parametrize("queries", [1, 4])
def test_gemini_grounding_matches_litellm(litellm: ModuleType, catalog: Catalog, model: str, queries: int) -> None:
    calc = importlib.import_module("litellm.llms.gemini.cost_calculator")
    types = importlib.import_module("litellm.types.utils")
    details = types.PromptTokensDetailsWrapper(web_search_requests=queries)
    usage = types.Usage(prompt_tokens=1, completion_tokens=1, prompt_tokens_details=details)
    theirs = calc.cost_per_web_search_request(usage, litellm.get_model_info(model))
    ours = price_units(real_card(catalog, model), UnitCounts(grounding_queries=queries))
    _close(ours.parts["grounding_queries"], theirs)


@pytest.mark.parametrize("provider", ["openai", "azure"])
def test_container_sessions_match_litellm(litellm: ModuleType, catalog: Catalog, provider: str) -> None:
    theirs = _tools().StandardBuiltInToolCostTracking.get_cost_for_code_interpreter(sessions=3, provider=provider)
    ours = price_units(
        real_card(catalog, "gpt-4.1"), UnitCounts(container_sessions=3), lookup=catalog.lookup, kind=provider
    )
    _close(ours.parts["container_sessions"], theirs)


def test_anthropic_web_search_is_billed_where_the_map_has_no_price(catalog: Catalog) -> None:
    # The map gives claude-haiku-4-5 no search_context_cost_per_query, so litellm bills its searches at $0;
    # Anthropic's pricing page bills web search at $10 per 1,000 searches on every model.
    ours = price_units(real_card(catalog, "claude-haiku-4-5"), UnitCounts(web_search_calls=3))
    assert ours.parts["web_search_calls"] == Decimal("0.03")


def test_one_file_search_call_matches_litellm(litellm: ModuleType, catalog: Catalog) -> None:
    theirs = _tools().StandardBuiltInToolCostTracking.get_cost_for_file_search(file_search={"type": "file_search"})
    _close(
        price_units(real_card(catalog, "gpt-4.1"), UnitCounts(file_search_calls=1)).parts["file_search_calls"], theirs
    )


def test_file_search_is_billed_per_call_where_litellm_bills_one_per_answer(catalog: Catalog) -> None:
    # litellm bills one call's $0.0025 per answer however many file_search_call items it holds; OpenAI's pricing
    # page bills "$2.50 / 1k tool calls", so three calls cost three times that.
    ours = price_units(real_card(catalog, "gpt-4.1"), UnitCounts(file_search_calls=3))
    assert ours.parts["file_search_calls"] == Decimal("0.0075")


@pytest.mark.parametrize("seconds", [1.0, 8.47, 3600.25])
@pytest.mark.parametrize("model", ["whisper-1", "azure/whisper-1"])
def test_transcription_seconds_match_litellm(litellm: ModuleType, catalog: Catalog, model: str, seconds: float) -> None:
    prompt, completion = litellm.cost_per_token(
        model=model, call_type="atranscription", audio_transcription_file_duration=seconds
    )
    ours = price_units(real_card(catalog, model), UnitCounts(audio_ms=round(seconds * 1000)), tokens=TokenCounts())
    _close(ours.parts["audio_ms"], prompt + completion)


@pytest.mark.parametrize("characters", [1, 1234, 4096])
@pytest.mark.parametrize("model", ["tts-1", "tts-1-hd"])
def test_speech_characters_match_litellm(litellm: ModuleType, catalog: Catalog, model: str, characters: int) -> None:
    prompt, completion = litellm.cost_per_token(model=model, call_type="speech", prompt_characters=characters)
    ours = price_units(real_card(catalog, model), UnitCounts(audio_characters=characters), tokens=TokenCounts())
    _close(ours.parts["audio_characters"], prompt + completion)


@pytest.mark.parametrize(
    ("model", "size", "quality"),
    [
        ("azure/dall-e-3", "1024x1792", "hd"),
        ("azure/dall-e-3", "1024x1024", "standard"),
        ("gpt-image-1", "1024x1024", "high"),
        ("gpt-image-1", "1536x1024", "low"),
    ],
)
def test_images_by_size_and_quality_match_litellm(
    litellm: ModuleType, catalog: Catalog, model: str, size: str, quality: str
) -> None:
    calc = importlib.import_module("litellm.cost_calculator")
    provider = "azure" if model.startswith("azure/") else "openai"
    theirs = calc.default_image_cost_calculator(
        model=model, size=size.replace("x", "-x-"), quality=quality, n=2, custom_llm_provider=provider
    )
    units = UnitCounts(images=2, image_size=size, image_quality=quality)
    name = (
        f"{'azure/' if provider == 'azure' else ''}{quality}/{size.replace('x', '-x-')}/{model.removeprefix('azure/')}"
    )
    ours = price_units(real_card(catalog, name), units, lookup=catalog.lookup, tokens=TokenCounts())
    _close(ours.parts["images"], theirs)
