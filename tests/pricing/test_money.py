from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing import (
    Catalog,
    PriceCard,
    TokenCounts,
    bound_cost,
    cost_to_pico,
    decimal_text,
    pico_to_usd,
    price_tokens,
)
from tests.pricing.cards import make_card, real_card

_CATALOG = Catalog.load()
_BOUNDED_MODELS = ["gemini/gemini-2.5-pro", "gpt-realtime", "claude-sonnet-4-5", "gpt-5", "gemini/gemini-2.5-flash"]


@pytest.mark.parametrize(
    ("usd", "pico"),
    [
        ("0", 0),
        ("0.000000000001", 1),
        ("0.00000015", 150_000),
        ("0.15", 150_000_000_000),
        ("1234.567890123456", 1_234_567_890_123_456),
        ("-0.000000000002", -2),
    ],
)
def test_usd_and_picodollars_convert_both_ways(usd: str, pico: int) -> None:
    assert cost_to_pico(Decimal(usd)) == pico
    assert pico_to_usd(pico) == Decimal(usd)


def test_sub_picodollar_amounts_are_not_silently_rounded() -> None:
    with pytest.raises(ValueError, match="not a whole number of picodollars"):
        cost_to_pico(Decimal("0.0000000000015"))


def test_priced_totals_always_convert_to_picodollars(catalog: Catalog) -> None:
    cost = price_tokens(real_card(catalog, "gpt-4o-mini"), TokenCounts(input=123_457, cached_input=1024, output=987))

    assert pico_to_usd(cost_to_pico(cost.total)) == cost.total


def test_bound_cost_uses_the_highest_rates_that_could_apply(catalog: Catalog) -> None:
    card = real_card(catalog, "gemini/gemini-2.5-pro")

    assert bound_cost(card, 1000, 100) == 1000 * Decimal("2.25E-6") + 100 * Decimal("1.8E-5")
    assert bound_cost(card, 300_000, 100) == 300_000 * Decimal("4.5E-6") + 100 * Decimal("2.7E-5")


def test_bound_cost_counts_reasoning_and_audio_output_rates() -> None:
    card = make_card(output_cost_per_token="1", output_cost_per_reasoning_token="3", output_cost_per_audio_token="2")

    assert bound_cost(card, 0, 10) == 30


def test_bound_cost_rounds_up_to_a_whole_picodollar() -> None:
    card = make_card(input_cost_per_token="1E-13")

    assert bound_cost(card, 1, 0) == Decimal("0.000000000001")


def test_bound_cost_of_an_empty_card_is_zero() -> None:
    assert bound_cost(make_card(input_dbu_cost_per_token="5"), 100, 100) == 0


@st.composite
def _split(draw: st.DrawFn, total: int, parts: int) -> list[int]:
    """``parts`` disjoint counts whose sum is at most ``total``, as real usage reports them."""
    cuts = sorted(draw(st.lists(st.integers(0, total), min_size=parts + 1, max_size=parts + 1)))
    return [high - low for low, high in zip(cuts, cuts[1:], strict=False)]


@given(
    model=st.sampled_from(_BOUNDED_MODELS),
    prompt=st.integers(0, 2_000_000),
    output=st.integers(0, 100_000),
    data=st.data(),
    service_tier=st.sampled_from([None, "default", "priority", "flex", "batch"]),
)
def test_bound_cost_is_never_below_the_real_cost(
    model: str, prompt: int, output: int, data: st.DataObject, service_tier: str | None
) -> None:
    card = _CATALOG.lookup(model)
    assert isinstance(card, PriceCard)
    cached, write, write_1h, audio_in = data.draw(_split(prompt, 4))
    reasoning, audio_out = data.draw(_split(output, 2))
    tokens = TokenCounts(
        input=prompt,
        cached_input=cached,
        cache_write=write,
        cache_write_1h=write_1h,
        audio_input=audio_in,
        output=output,
        reasoning=reasoning,
        audio_output=audio_out,
    )

    assert price_tokens(card, tokens, service_tier).total <= bound_cost(card, prompt, output)


@given(st.integers(min_value=0, max_value=10**20))
def test_money_text_is_positional_and_exact(pico: int) -> None:
    text = decimal_text(pico_to_usd(pico))
    assert "E" not in text and "e" not in text
    assert Decimal(text) == pico_to_usd(pico)


def test_tiny_amounts_read_as_finance_writes_them() -> None:
    assert decimal_text(pico_to_usd(150_000)) == "0.00000015"
    assert decimal_text(Decimal("1E+1")) == "10"
