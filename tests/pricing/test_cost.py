from __future__ import annotations

from decimal import Decimal

import pytest

from pricing import Catalog, Cost, TokenCounts, price_tokens
from tests.pricing.cards import make_card, real_card

_CACHED = make_card(
    input_cost_per_token="0.000001",
    cache_read_input_token_cost="0.0000001",
    cache_creation_input_token_cost="0.00000125",
    cache_creation_input_token_cost_above_1hr="0.000002",
    output_cost_per_token="0.000004",
)


def test_cached_tokens_are_not_counted_twice() -> None:
    cost = price_tokens(_CACHED, TokenCounts(input=1000, cached_input=400))

    assert cost.input == Decimal("0.0006")
    assert cost.cached_input == Decimal("0.00004")
    assert cost.total == Decimal("0.00064")


def test_cache_writes_are_priced_by_lifetime() -> None:
    cost = price_tokens(_CACHED, TokenCounts(input=1000, cache_write=100, cache_write_1h=200))

    assert cost.input == Decimal("0.0007")
    assert cost.cache_write == Decimal("0.000125") + Decimal("0.0004")


@pytest.mark.parametrize(
    ("rates", "tokens", "field", "expected"),
    [
        ({"input_cost_per_token": "0.000001"}, TokenCounts(input=10, cached_input=10), "cached_input", "0.00001"),
        ({"input_cost_per_token": "0.000001"}, TokenCounts(input=10, cache_write=10), "cache_write", "0.00001"),
        ({"input_cost_per_token": "0.000001"}, TokenCounts(input=10, cache_write_1h=10), "cache_write", "0.00001"),
        (
            {"input_cost_per_token": "0.000001", "cache_creation_input_token_cost": "0.000003"},
            TokenCounts(input=10, cache_write_1h=10),
            "cache_write",
            "0.00003",
        ),
        ({"input_cost_per_token": "0.000001"}, TokenCounts(input=10, audio_input=10), "audio", "0.00001"),
        ({"output_cost_per_token": "0.000002"}, TokenCounts(output=10, reasoning=10), "reasoning", "0.00002"),
        ({"output_cost_per_token": "0.000002"}, TokenCounts(output=10, audio_output=10), "audio", "0.00002"),
    ],
)
def test_missing_rates_fall_back(rates: dict[str, str], tokens: TokenCounts, field: str, expected: str) -> None:
    cost = price_tokens(make_card(**rates), tokens)

    assert getattr(cost, field) == Decimal(expected)
    assert cost.total == Decimal(expected)


@pytest.mark.parametrize(
    ("reasoning_rate", "expected_reasoning"),
    [("0.00001", Decimal("0.003")), (None, Decimal("0.0006"))],
)
def test_reasoning_tokens_use_their_own_rate_when_there_is_one(
    reasoning_rate: str | None, expected_reasoning: Decimal
) -> None:
    rates = {"output_cost_per_token": "0.000002"}
    if reasoning_rate is not None:
        rates["output_cost_per_reasoning_token"] = reasoning_rate

    cost = price_tokens(make_card(**rates), TokenCounts(output=500, reasoning=300))

    assert (cost.output, cost.reasoning) == (Decimal("0.0004"), expected_reasoning)


def test_audio_tokens_use_audio_rates(catalog: Catalog) -> None:
    card = real_card(catalog, "gpt-realtime")

    cost = price_tokens(card, TokenCounts(input=1000, audio_input=600, output=500, audio_output=200))

    rates = card.rates
    assert cost.input == 400 * rates["input_cost_per_token"]
    assert cost.output == 300 * rates["output_cost_per_token"]
    assert cost.audio == 600 * rates["input_cost_per_audio_token"] + 200 * rates["output_cost_per_audio_token"]


def test_parts_larger_than_totals_floor_the_plain_text_at_zero() -> None:
    cost = price_tokens(_CACHED, TokenCounts(input=10, cached_input=20, output=5, reasoning=8))

    assert (cost.input, cost.output) == (Decimal(0), Decimal(0))
    assert cost.cached_input == Decimal("0.000002")


def test_no_tokens_cost_nothing() -> None:
    assert price_tokens(_CACHED, TokenCounts()).total == 0


def test_a_card_without_rates_prices_at_zero() -> None:
    assert price_tokens(make_card(), TokenCounts(input=100, output=100)).total == 0


def test_total_is_the_exact_sum_rounded_once_half_even() -> None:
    card = make_card(input_cost_per_token="2.5E-13", output_cost_per_token="1E-13")

    cost = price_tokens(card, TokenCounts(input=10, output=5))

    assert (cost.input, cost.output) == (Decimal("2.5E-12"), Decimal("5E-13"))
    assert cost.total == Decimal("0.000000000003")


@pytest.mark.parametrize(("tokens", "pico"), [(1, 0), (3, 2), (5, 2), (7, 4)])
def test_total_rounds_half_to_even(tokens: int, pico: int) -> None:
    card = make_card(input_cost_per_token="5E-13")

    assert price_tokens(card, TokenCounts(input=tokens)).total == pico * Decimal("1E-12")


def test_total_equals_rounded_sum_of_components(catalog: Catalog) -> None:
    card = real_card(catalog, "claude-sonnet-4-5")
    tokens = TokenCounts(input=12345, cached_input=2000, cache_write=300, cache_write_1h=40, output=777, reasoning=77)

    cost = price_tokens(card, tokens)

    parts = (cost.input, cost.cached_input, cost.cache_write, cost.output, cost.reasoning, cost.audio)
    assert cost.total == sum(parts, Decimal(0)).quantize(Decimal("1E-12"))


def test_a_million_tiny_events_sum_exactly() -> None:
    card = Catalog.from_entries({}, {"cheap": {"input": "0.15"}}).lookup("cheap")
    assert card is not None

    event = price_tokens(card, TokenCounts(input=1)).total
    total = Decimal(0)
    for _ in range(1_000_000):
        total += event

    assert event == Decimal("0.00000015")
    assert total == Decimal("0.15")
    assert sum([float(event)] * 1_000_000) != 0.15  # what floats would have recorded


@pytest.mark.parametrize(
    "tokens",
    [
        {"input": -1},
        {"cached_input": -1},
        {"cache_write": -1},
        {"cache_write_1h": -1},
        {"output": -1},
        {"reasoning": -1},
        {"audio_input": -1},
        {"audio_output": -1},
    ],
)
def test_negative_token_counts_are_rejected(tokens: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="token counts must not be negative"):
        TokenCounts(**tokens)


def test_cost_reports_no_tiers_for_a_plain_request() -> None:
    cost = price_tokens(_CACHED, TokenCounts(input=1, output=1))

    assert cost == Cost(
        input=Decimal("0.000001"),
        cached_input=Decimal(0),
        cache_write=Decimal(0),
        output=Decimal("0.000004"),
        reasoning=Decimal(0),
        audio=Decimal(0),
        total=Decimal("0.000005"),
    )
