"""A provider's kind chooses its own price map entries: gemini/... and azure/... before the bare model's."""

from __future__ import annotations

import pytest

from pricing import Catalog, describe_for_kind, lookup_for_kind, priced_name

_ENTRIES = {
    "gemini-2.5-pro": {"input_cost_per_token": 1e-6},  # the map's bare names are Vertex AI's
    "gemini/gemini-2.5-pro": {"input_cost_per_token": 2e-6},
    "gpt-4o": {"input_cost_per_token": 3e-6},
    "azure/gpt-4o-mini": {"input_cost_per_token": 4e-6},
    "gpt-4o-mini": {"input_cost_per_token": 5e-6},
    "gpt-4o-mini-2024-07-18": {"input_cost_per_token": 6e-6},
}


@pytest.mark.parametrize(
    ("model", "kind", "resolved"),
    [
        ("gemini-2.5-pro", "gemini", "gemini/gemini-2.5-pro"),
        ("models/gemini-2.5-pro", "gemini", "gemini/gemini-2.5-pro"),
        ("gemini-2.5-pro", "openai", "gemini-2.5-pro"),
        ("gpt-4o-mini", "azure", "azure/gpt-4o-mini"),
        ("gpt-4o", "azure", "gpt-4o"),  # no azure/ entry: the base model's
        ("gpt-4o-mini-2024-07-18", "azure", "azure/gpt-4o-mini"),  # Azure's own, undated, before the bare dated one
        ("gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("gpt-4o-mini", None, "gpt-4o-mini"),
    ],
)
def test_a_kind_prices_by_its_own_entry_first(model: str, kind: str | None, resolved: str) -> None:
    card = lookup_for_kind(Catalog.from_entries(_ENTRIES), model, kind)
    assert card is not None and card.model == resolved


def test_a_prefixed_name_is_not_prefixed_twice() -> None:
    assert priced_name("azure/gpt-4o", "azure") == "azure/gpt-4o"


_BEDROCK_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.mark.parametrize(
    ("model", "kind", "resolved"),
    [
        ("claude-sonnet-4-5", "vertex_ai", "vertex_ai/claude-sonnet-4-5"),
        ("gemini-2.5-pro", "vertex_ai", "gemini-2.5-pro"),  # the bare Gemini names are Vertex AI's
        ("gemini-2.5-pro", "gemini", "gemini/gemini-2.5-pro"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        (
            "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "bedrock",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        ("claude-opus-latest", "bedrock", "bedrock/claude-opus-latest"),
        ("gpt-4o-2024-05-13", "azure", "azure/gpt-4o-2024-05-13"),
    ],
)
def test_each_provider_resolves_to_its_own_entry_in_the_real_map(
    catalog: Catalog, model: str, kind: str, resolved: str
) -> None:
    card = lookup_for_kind(catalog, model, kind)
    assert card is not None and card.model == resolved


def test_describe_for_kind_says_which_entry_was_chosen_and_why(catalog: Catalog) -> None:
    text = describe_for_kind(catalog, "claude-sonnet-4-5", "vertex_ai")
    assert text.startswith("asked      claude-sonnet-4-5\nprovider   vertex_ai: its own vertex_ai/ entry\n")
    assert "resolved   vertex_ai/claude-sonnet-4-5" in text
