"""Small builders for price cards used across the pricing tests."""

from __future__ import annotations

from decimal import Decimal

from pricing import Catalog, PriceCard


def make_card(**rates: str) -> PriceCard:
    """A card with the given per-token rates, written as decimal strings under litellm key names."""
    return PriceCard(model="test-model", source="config", rates={key: Decimal(rate) for key, rate in rates.items()})


def real_card(catalog: Catalog, model: str) -> PriceCard:
    """The bundled map's card for ``model``, failing the test if the map lacks it."""
    card = catalog.lookup(model)
    assert card is not None, f"{model} is not in the bundled price map"
    return card
