from __future__ import annotations

from decimal import Decimal

import pytest

from pricing import Catalog, TokenCounts, price_tokens
from tests.pricing.cards import make_card, real_card

_MULTI_TIER = make_card(
    input_cost_per_token="1",
    input_cost_per_token_above_32k_tokens="2",
    input_cost_per_token_above_256k_tokens="3",
    output_cost_per_token="10",
    output_cost_per_token_above_32k_tokens="20",
)
_SERVICE_TIERS = make_card(
    input_cost_per_token="1",
    input_cost_per_token_priority="2",
    input_cost_per_token_flex="0.5",
    input_cost_per_token_batches="0.25",
    input_cost_per_token_above_100_tokens="4",
    input_cost_per_token_above_100_tokens_priority="8",
    output_cost_per_token="10",
    output_cost_per_token_priority="20",
    output_cost_per_token_above_100_tokens="40",
)


@pytest.mark.parametrize(
    ("prompt", "input_rate", "tier"),
    [
        (200_000, "0.00000125", None),
        (200_001, "0.0000025", "above_200k_tokens"),
        (1_000_000, "0.0000025", "above_200k_tokens"),
    ],
)
def test_size_tier_follows_prompt_size(catalog: Catalog, prompt: int, input_rate: str, tier: str | None) -> None:
    card = real_card(catalog, "gemini/gemini-2.5-pro")

    cost = price_tokens(card, TokenCounts(input=prompt))

    assert cost.input == prompt * Decimal(input_rate)
    assert cost.tier == tier


def test_size_tier_applies_to_cached_and_output_rates(catalog: Catalog) -> None:
    card = real_card(catalog, "gemini/gemini-2.5-pro")

    cost = price_tokens(card, TokenCounts(input=250_000, cached_input=50_000, output=1000))

    assert cost.cached_input == 50_000 * card.rates["cache_read_input_token_cost_above_200k_tokens"]
    assert cost.output == 1000 * card.rates["output_cost_per_token_above_200k_tokens"]


@pytest.mark.parametrize(
    ("prompt", "input_cost", "output_cost", "tier"),
    [
        (32_000, 32_000, 10, None),
        (32_001, 64_002, 20, "above_32k_tokens"),
        (256_001, 768_003, 20, "above_256k_tokens"),
    ],
)
def test_each_rate_takes_its_highest_crossed_tier(
    prompt: int, input_cost: int, output_cost: int, tier: str | None
) -> None:
    cost = price_tokens(_MULTI_TIER, TokenCounts(input=prompt, output=1))

    assert (cost.input, cost.output, cost.tier) == (Decimal(input_cost), Decimal(output_cost), tier)


@pytest.mark.parametrize(
    ("service_tier", "input_cost", "output_cost", "used"),
    [
        ("priority", 2, 20, "priority"),
        ("PRIORITY", 2, 20, "priority"),
        ("flex", Decimal("0.5"), 10, "flex"),
        ("batch", Decimal("0.25"), 10, "batch"),
        ("default", 1, 10, None),
        ("auto", 1, 10, None),
        ("scale", 1, 10, None),
        (None, 1, 10, None),
    ],
)
def test_service_tier_selects_its_rates(
    service_tier: str | None, input_cost: Decimal, output_cost: Decimal, used: str | None
) -> None:
    cost = price_tokens(_SERVICE_TIERS, TokenCounts(input=1, output=1), service_tier)

    assert (cost.input, cost.output, cost.service_tier) == (input_cost, output_cost, used)


@pytest.mark.parametrize(
    ("service_tier", "input_cost", "output_cost"),
    [("priority", 8 * 101, 40), ("flex", 4 * 101, 40), (None, 4 * 101, 40)],
)
def test_size_tier_with_service_tier_prefers_the_combined_rate(
    service_tier: str | None, input_cost: int, output_cost: int
) -> None:
    cost = price_tokens(_SERVICE_TIERS, TokenCounts(input=101, output=1), service_tier)

    assert (cost.input, cost.output, cost.tier) == (Decimal(input_cost), Decimal(output_cost), "above_100_tokens")


def test_real_priority_rates_above_a_size_tier(catalog: Catalog) -> None:
    card = real_card(catalog, "gemini/gemini-2.5-pro")

    cost = price_tokens(card, TokenCounts(input=250_000, output=1000), "priority")

    assert cost.input == 250_000 * card.rates["input_cost_per_token_above_200k_tokens_priority"]
    assert cost.output == 1000 * card.rates["output_cost_per_token_above_200k_tokens_priority"]
    assert (cost.tier, cost.service_tier) == ("above_200k_tokens", "priority")


def test_service_tier_without_rates_on_the_card_is_not_reported(catalog: Catalog) -> None:
    cost = price_tokens(real_card(catalog, "gpt-4"), TokenCounts(input=10, output=10), "priority")

    assert cost.service_tier is None


def test_one_hour_cache_write_is_not_mistaken_for_a_size_tier() -> None:
    card = make_card(input_cost_per_token="1", cache_creation_input_token_cost_above_1hr="2")

    cost = price_tokens(card, TokenCounts(input=5000, cache_write_1h=10))

    assert (cost.cache_write, cost.tier) == (Decimal(20), None)
