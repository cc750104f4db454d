"""The tight bound prices each part of a prompt at the dearest rate that can apply to it, and never less."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pricing import (
    Catalog,
    PriceCard,
    PromptParts,
    TokenCounts,
    bound_cost,
    output_rate,
    price_tokens,
    tight_bound_cost,
)

CATALOG = Catalog.from_entries(
    {
        "sonnet": {
            "input_cost_per_token": 3e-06,
            "output_cost_per_token": 1.5e-05,
            "cache_creation_input_token_cost": 3.75e-06,
            "cache_creation_input_token_cost_above_1hr": 6e-06,
            "cache_read_input_token_cost": 3e-07,
            "input_cost_per_token_above_200k_tokens": 6e-06,
            "output_cost_per_token_above_200k_tokens": 2.25e-05,
            "cache_creation_input_token_cost_above_200k_tokens": 7.5e-06,
            "cache_creation_input_token_cost_above_1hr_above_200k_tokens": 1.2e-05,
            "input_cost_per_token_batches": 1.5e-06,
        },
        "gpt": {
            "input_cost_per_token": 1e-06,
            "output_cost_per_token": 4e-06,
            "cache_creation_input_token_cost": 1.25e-06,
            "cache_creation_input_token_cost_above_12hr": 2e-06,
            "input_cost_per_audio_token": 1e-05,
            "input_cost_per_token_priority": 2e-06,
        },
        "plain": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
    }
)


def _card(name: str) -> PriceCard:
    card = CATALOG.lookup(name)
    assert card is not None
    return card


@pytest.mark.parametrize(
    ("model", "parts", "output", "expected"),
    [
        ("sonnet", PromptParts(text=1000), 0, Decimal("0.003")),
        ("sonnet", PromptParts(write_5m=1000), 0, Decimal("0.00375")),
        ("sonnet", PromptParts(write_1h=1000), 0, Decimal("0.006")),
        ("sonnet", PromptParts(text=100_000, write_1h=150_000), 10, Decimal("2.400225")),
        ("gpt", PromptParts(text=1000), 0, Decimal("0.002")),  # the priority tier may apply
        ("gpt", PromptParts(write_any=1000), 0, Decimal("0.002")),
        ("gpt", PromptParts(media=1000), 0, Decimal("0.01")),
        ("plain", PromptParts(write_5m=10, write_1h=10, write_any=10), 10, Decimal("0.00005")),
    ],
)
def test_each_part_is_priced_at_its_dearest_rate(
    model: str, parts: PromptParts, output: int, expected: Decimal
) -> None:
    assert tight_bound_cost(_card(model), parts, output) == expected


@pytest.mark.parametrize("model", ["sonnet", "gpt", "plain"])
def test_the_tight_bound_is_never_above_the_byte_bound_for_the_same_tokens(model: str) -> None:
    card = _card(model)
    parts = PromptParts(text=300, write_5m=200, write_1h=100, write_any=50, media=10)
    assert tight_bound_cost(card, parts, 500) <= bound_cost(card, parts.total, 500)


def test_the_bound_covers_every_real_billing_of_the_parts() -> None:
    card = _card("sonnet")
    bound = tight_bound_cost(card, PromptParts(text=50, write_5m=100, write_1h=100), 40)
    for tokens in (
        TokenCounts(input=250, cache_write=100, cache_write_1h=100, output=40),
        TokenCounts(input=250, cached_input=200, output=40),
        TokenCounts(input=250, output=40),
    ):
        assert price_tokens(card, tokens).total <= bound


def test_the_output_rate_follows_the_size_tier_the_prompt_crosses() -> None:
    card = _card("sonnet")
    assert output_rate(card, 1000) == Decimal("0.000015")
    assert output_rate(card, 200_001) == Decimal("0.0000225")


def test_negative_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        PromptParts(text=-1)
