from __future__ import annotations

from decimal import Decimal

import pytest

from pricing import Catalog, PricingConfigError


def test_override_replaces_only_the_rates_it_names() -> None:
    catalog = Catalog.load({"gpt-4o-mini": {"input": "0.10"}})

    card = catalog.lookup("openai/gpt-4o-mini")

    assert card is not None
    assert card.source == "config"
    assert card.rates["input_cost_per_token"] == Decimal("1E-7")
    assert card.rates["output_cost_per_token"] == Decimal("6E-7")
    assert card.rates["cache_read_input_token_cost"] == Decimal("7.5E-8")


def test_override_limits_replace_the_map_limits() -> None:
    catalog = Catalog.from_entries(
        {"m": {"max_output_tokens": 100, "max_input_tokens": 1000}}, {"m": {"max_output_tokens": 50}}
    )

    card = catalog.lookup("m")

    assert card is not None
    assert (card.max_output_tokens, card.max_input_tokens) == (50, 1000)


def test_override_with_a_new_name_defines_a_custom_model() -> None:
    catalog = Catalog.load({"acme-llm": {"input": 1, "output": 2.5, "max_input_tokens": 8000}})

    card = catalog.lookup("acme/acme-llm")

    assert card is not None
    assert (card.model, card.source, card.max_input_tokens) == ("acme-llm", "config", 8000)
    assert card.rates == {"input_cost_per_token": Decimal("0.000001"), "output_cost_per_token": Decimal("0.0000025")}


@pytest.mark.parametrize(
    ("key", "litellm_key"),
    [
        ("input", "input_cost_per_token"),
        ("output", "output_cost_per_token"),
        ("cached_input", "cache_read_input_token_cost"),
        ("cache_write", "cache_creation_input_token_cost"),
        ("cache_write_1h", "cache_creation_input_token_cost_above_1hr"),
        ("reasoning", "output_cost_per_reasoning_token"),
        ("audio_input", "input_cost_per_audio_token"),
        ("audio_output", "output_cost_per_audio_token"),
    ],
)
def test_override_keys_map_to_litellm_rate_keys(key: str, litellm_key: str) -> None:
    card = Catalog.from_entries({}, {"m": {key: 3}}).lookup("m")

    assert card is not None
    assert card.rates == {litellm_key: Decimal("0.000003")}


@pytest.mark.parametrize(
    ("price", "per_token"),
    [
        (0.15, "0.00000015"),
        ("0.15", "0.00000015"),
        (3, "0.000003"),
        ("0.0000001", "1E-13"),
        (0, "0"),
        (1e-3, "1E-9"),
        ("12.345678901234567890", "0.000012345678901234567890"),
    ],
)
def test_per_million_prices_convert_exactly(price: object, per_token: str) -> None:
    card = Catalog.from_entries({}, {"m": {"input": price}}).lookup("m")

    assert card is not None
    assert card.rates["input_cost_per_token"] == Decimal(per_token)


def test_unknown_override_key_names_model_key_and_valid_keys() -> None:
    with pytest.raises(PricingConfigError) as raised:
        Catalog.from_entries({}, {"gpt-4o": {"input": 1, "inptu": 2}})

    message = str(raised.value)
    assert '[pricing.models."gpt-4o"]' in message
    assert "'inptu'" in message
    assert "input, output, cached_input, cache_write, cache_write_1h, reasoning, audio_input, audio_output" in message
    assert "max_output_tokens, max_input_tokens" in message


@pytest.mark.parametrize("price", [True, "abc", -1, "-0.5", "NaN", "Infinity", float("inf"), None, [1]])
def test_invalid_price_is_a_config_error(price: object) -> None:
    with pytest.raises(PricingConfigError, match=r'\[pricing.models."m"\]: output must be a non-negative price'):
        Catalog.from_entries({}, {"m": {"output": price}})


@pytest.mark.parametrize("limit", [-1, 1.5, True, "10"])
def test_invalid_token_limit_is_a_config_error(limit: object) -> None:
    with pytest.raises(PricingConfigError, match="max_output_tokens must be a non-negative integer"):
        Catalog.from_entries({}, {"m": {"max_output_tokens": limit}})


def test_pricing_config_error_is_a_value_error() -> None:
    assert issubclass(PricingConfigError, ValueError)
