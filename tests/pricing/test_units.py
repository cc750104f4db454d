"""Units beyond tokens, priced from the bundled map or the tool-price table, each part rounded once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pricing import (
    Catalog,
    PricingConfigError,
    TokenCounts,
    UnitCounts,
    cost_to_pico,
    price_units,
    price_usage,
    tool_prices,
)
from tests.pricing.cards import real_card

_NONE = TokenCounts()


@pytest.mark.parametrize(
    ("model", "tokens", "units", "part", "usd"),
    [
        # search_context_cost_per_query of gpt-4o-search-preview: $0.025 at every size
        (
            "gpt-4o-search-preview",
            _NONE,
            UnitCounts(web_search_calls=2, search_context_size="low"),
            "web_search_calls",
            "0.05",
        ),
        # gpt-5 has $0.01 per query in the map
        ("gpt-5", _NONE, UnitCounts(web_search_calls=3), "web_search_calls", "0.03"),
        # claude-sonnet-4-5: $10 per 1,000 searches
        ("claude-sonnet-4-5", _NONE, UnitCounts(web_search_calls=4), "web_search_calls", "0.04"),
        # Gemini 2.5 grounding bills once per grounded prompt, however many queries it ran
        ("gemini/gemini-2.5-flash", _NONE, UnitCounts(grounding_queries=3), "grounding_queries", "0.035"),
        # file search: $2.50 / 1,000 calls (pricing.tools)
        ("gpt-4.1", _NONE, UnitCounts(file_search_calls=3), "file_search_calls", "0.0075"),
        # openai/container: $0.03 per session
        ("gpt-4.1", _NONE, UnitCounts(container_sessions=2), "container_sessions", "0.06"),
        # whisper-1: $0.0001 per second, 8.47 s
        ("whisper-1", _NONE, UnitCounts(audio_ms=8470), "audio_ms", "0.000847"),
        # tts-1: $0.000015 per character
        ("tts-1", _NONE, UnitCounts(audio_characters=1234), "audio_characters", "0.01851"),
        # gpt-image-1: image output tokens at $40 / 1M
        (
            "gpt-image-1",
            TokenCounts(input=20, output=4160),
            UnitCounts(images=1, image_tokens_out=4160),
            "image_tokens_out",
            "0.1664",
        ),
        # high/1024-x-1024/gpt-image-1: $0.167 per image, when no usage says otherwise
        ("gpt-image-1", _NONE, UnitCounts(images=1, image_size="1024x1024", image_quality="high"), "images", "0.167"),
    ],
)
def test_each_unit_is_priced_from_its_source(
    catalog: Catalog, model: str, tokens: TokenCounts, units: UnitCounts, part: str, usd: str
) -> None:
    priced = price_usage(real_card(catalog, model), tokens, units, lookup=catalog.lookup)
    assert priced.units.parts[part] == Decimal(usd)
    assert priced.units.unpriced == ()


def test_image_tokens_leave_the_text_tokens(catalog: Catalog) -> None:
    card = real_card(catalog, "gpt-image-1")
    units = UnitCounts(images=1, image_tokens_in=100, image_tokens_out=1000)
    priced = price_usage(card, TokenCounts(input=150, output=1000), units, lookup=catalog.lookup)
    assert priced.tokens.input == Decimal(50) * Decimal("5e-6")  # text only
    assert priced.tokens.output == 0
    assert priced.units.parts["image_tokens_in"] == Decimal("0.001")  # $10 / 1M image input tokens


def test_tokens_price_audio_models_that_report_them(catalog: Catalog) -> None:
    card = real_card(catalog, "gpt-4o-transcribe")
    priced = price_usage(card, TokenCounts(input=100, audio_input=90, output=20), UnitCounts(audio_ms=5000))
    assert "audio_ms" not in priced.units.parts and priced.units.unpriced == ()


def test_a_unit_without_a_price_is_named_not_zero(catalog: Catalog) -> None:
    priced = price_usage(real_card(catalog, "gpt-4o"), _NONE, UnitCounts(audio_characters=10))
    assert priced.units.unpriced == ("audio_characters",)
    assert "audio_characters" not in priced.units.parts


def test_web_search_falls_back_to_the_tool_table_where_the_map_has_no_price(catalog: Catalog) -> None:
    priced = price_usage(real_card(catalog, "gpt-4o"), _NONE, UnitCounts(web_search_calls=1))
    assert priced.units.parts["web_search_calls"] == Decimal("0.01")


def test_storage_is_billed_per_gb_day_after_the_free_allowance() -> None:
    units = UnitCounts(storage_bytes=3_500_000_000, storage_free_bytes=1_000_000_000)
    assert price_units(None, units).parts["storage_bytes"] == Decimal("0.25")


def test_each_part_is_rounded_once_and_the_total_is_their_sum(catalog: Catalog) -> None:
    card = real_card(catalog, "gpt-4o-search-preview")
    tokens = TokenCounts(input=333, output=77)
    priced = price_usage(card, tokens, UnitCounts(web_search_calls=1, file_search_calls=1))
    parts = [priced.tokens.total, *priced.units.parts.values()]
    assert cost_to_pico(priced.total) == sum(cost_to_pico(part) for part in parts)


def test_tool_prices_are_overridable_and_checked() -> None:
    assert tool_prices({"file_search_call": "0.003"}).file_search_call == Decimal("0.003")
    with pytest.raises(PricingConfigError, match=r"\[pricing.tools\]: unknown key 'file_serch_call'"):
        tool_prices({"file_serch_call": 1})
    with pytest.raises(PricingConfigError, match="file_search_call must be a non-negative price"):
        tool_prices({"file_search_call": -1})


def test_negative_units_are_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        UnitCounts(web_search_calls=-1)
