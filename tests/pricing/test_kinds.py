"""A provider's kind chooses its own price map entries: gemini/... and azure/... before the bare model's."""

from __future__ import annotations

import pytest

from pricing import Catalog, lookup_for_kind, priced_name

_ENTRIES = {
    "gemini-2.5-pro": {"input_cost_per_token": 1e-6},  # the map's bare names are Vertex AI's
    "gemini/gemini-2.5-pro": {"input_cost_per_token": 2e-6},
    "gpt-4o": {"input_cost_per_token": 3e-6},
    "azure/gpt-4o-mini": {"input_cost_per_token": 4e-6},
    "gpt-4o-mini": {"input_cost_per_token": 5e-6},
}


@pytest.mark.parametrize(
    ("model", "kind", "resolved"),
    [
        ("gemini-2.5-pro", "gemini", "gemini/gemini-2.5-pro"),
        ("models/gemini-2.5-pro", "gemini", "gemini/gemini-2.5-pro"),
        ("gemini-2.5-pro", "openai", "gemini-2.5-pro"),
        ("gpt-4o-mini", "azure", "azure/gpt-4o-mini"),
        ("gpt-4o", "azure", "gpt-4o"),  # no azure/ entry: the base model's
        ("gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("gpt-4o-mini", None, "gpt-4o-mini"),
    ],
)
def test_a_kind_prices_by_its_own_entry_first(model: str, kind: str | None, resolved: str) -> None:
    card = lookup_for_kind(Catalog.from_entries(_ENTRIES), model, kind)
    assert card is not None and card.model == resolved


def test_a_prefixed_name_is_not_prefixed_twice() -> None:
    assert priced_name("azure/gpt-4o", "azure") == "azure/gpt-4o"
