from __future__ import annotations

from decimal import Decimal

import pytest

from pricing import Catalog, PriceCard
from pricing.catalog import _MEMO_LIMIT

_RATE = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
_SYNTHETIC = Catalog.from_entries(
    {
        "gpt-x": _RATE,
        "gpt-x-2024-07-18": _RATE,
        "gemini/gemini-y": _RATE,
        "claude-z": _RATE,
        "llama-70b": _RATE,
        "sample_spec": _RATE,
        "not-a-table": 3,  # type: ignore[dict-item]
    }
)


@pytest.mark.parametrize(
    ("asked", "resolved"),
    [
        ("gpt-x", "gpt-x"),
        ("openai/gpt-x", "gpt-x"),
        ("openrouter/openai/gpt-x", "gpt-x"),
        ("gemini/gemini-y", "gemini/gemini-y"),
        ("gpt-x-2024-07-18", "gpt-x-2024-07-18"),
        ("gpt-x-2025-01-31", "gpt-x"),
        ("gpt-x-20250131", "gpt-x"),
        ("gpt-x-0613", "gpt-x"),
        ("claude-z@20250929", "claude-z"),
        ("openai/gpt-x-2025-01-31", "gpt-x"),
        ("claude-z-latest", "claude-z"),
        ("anthropic/claude-z-latest", "claude-z"),
    ],
)
def test_lookup_resolves_names_to_catalog_keys(asked: str, resolved: str) -> None:
    card = _SYNTHETIC.lookup(asked)

    assert card is not None
    assert card.model == resolved


@pytest.mark.parametrize(
    "asked",
    ["gpt-y", "gpt-x-8192", "gpt-x-1332", "llama-70b-32768", "sample_spec", "not-a-table", "openai/", ""],
)
def test_lookup_returns_none_for_unknown_models(asked: str) -> None:
    assert _SYNTHETIC.lookup(asked) is None


@pytest.mark.parametrize(
    ("asked", "resolved"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18"),
        ("gpt-4o-mini-2099-12-31", "gpt-4o-mini"),
        ("gpt-4-0613", "gpt-4-0613"),
        ("gpt-4o-1231", "gpt-4o"),
        ("gemini/gemini-2.5-pro", "gemini/gemini-2.5-pro"),
        ("claude-sonnet-4-5@20990101", "claude-sonnet-4-5"),
    ],
)
def test_lookup_resolves_real_model_names(catalog: Catalog, asked: str, resolved: str) -> None:
    card = catalog.lookup(asked)

    assert card is not None
    assert (card.model, card.source) == (resolved, "litellm")


def test_unknown_real_model_is_none(catalog: Catalog) -> None:
    assert catalog.lookup("no-such-model-anywhere") is None


def test_lookup_repeats_return_the_same_card() -> None:
    first = _SYNTHETIC.lookup("openai/gpt-x")

    assert _SYNTHETIC.lookup("openai/gpt-x") is first


def test_memo_stays_bounded_under_many_distinct_names() -> None:
    catalog = Catalog.from_entries({"gpt-x": _RATE})

    for n in range(_MEMO_LIMIT + 10):
        assert catalog.lookup(f"junk-{n}") is None

    assert len(catalog._memo) <= _MEMO_LIMIT
    assert catalog.lookup("gpt-x") is not None


def test_float_noise_is_normalised_to_twelve_significant_digits() -> None:
    catalog = Catalog.from_entries({"m": {"input_cost_per_token": 2.0000000000000002e-07, "output_cost_per_token": 0}})

    card = catalog.lookup("m")

    assert card is not None
    assert card.rates == {"input_cost_per_token": Decimal("2E-7"), "output_cost_per_token": Decimal(0)}


def test_card_keeps_only_per_token_rates() -> None:
    entry: dict[str, object] = {
        "input_cost_per_token": 1e-6,
        "input_cost_per_token_above_200k_tokens_priority": 3e-6,
        "cache_read_input_token_cost": 1e-7,
        "cache_creation_input_token_cost_above_1hr": 2e-6,
        "input_cost_per_audio_token": 4e-6,
        "output_cost_per_audio_token_batches": 5e-6,
        "output_cost_per_reasoning_token": 6e-6,
        "input_cost_per_image": 0.01,
        "search_context_cost_per_query": {"search_context_size_low": 0.01},
        "supports_vision": True,
        "output_cost_per_token": "1e-6",
        "litellm_provider": "openai",
    }

    card = Catalog.from_entries({"m": entry}).lookup("m")

    assert card is not None
    assert set(card.rates) == {
        "input_cost_per_token",
        "input_cost_per_token_above_200k_tokens_priority",
        "cache_read_input_token_cost",
        "cache_creation_input_token_cost_above_1hr",
        "input_cost_per_audio_token",
        "output_cost_per_audio_token_batches",
        "output_cost_per_reasoning_token",
    }


def test_card_reads_limits_and_mode() -> None:
    entry: dict[str, object] = {"max_input_tokens": 1000, "max_output_tokens": "lots", "mode": "chat"}

    card = Catalog.from_entries({"m": entry}).lookup("m")

    assert card == PriceCard(model="m", source="litellm", rates={}, max_input_tokens=1000, mode="chat")


def test_card_rates_are_read_only() -> None:
    rates = {"input_cost_per_token": Decimal("1E-6")}
    card = PriceCard(model="m", source="config", rates=rates)
    rates["input_cost_per_token"] = Decimal(1)

    assert card.rates["input_cost_per_token"] == Decimal("1E-6")
    with pytest.raises(TypeError):
        card.rates["input_cost_per_token"] = Decimal(1)  # type: ignore[index]


def test_cards_are_hashable() -> None:
    card = PriceCard(model="m", source="config", rates={"input_cost_per_token": Decimal("1E-6")})

    assert hash(card) == hash(PriceCard(model="m", source="config", rates={}))
