"""Prices of hosted tools and storage that litellm's map does not carry: a small table, overridable in config.

Each figure is written with its source. ``[pricing.tools]`` in config.toml replaces any of them, in USD
(a number or a decimal string), e.g. ``file_search_call = "0.0025"``. The map's own prices win over this
table where a card has one (``code_interpreter_cost_per_session`` of ``openai/container``,
``file_search_cost_per_1k_calls``, ``vector_store_cost_per_gb_per_day``); see ``pricing.units``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

from pricing.catalog import PricingConfigError


@dataclass(frozen=True, slots=True)
class ToolPrices:
    """USD per unit of each hosted tool the map does not price (or prices for some providers only)."""

    web_search_call: Decimal = Decimal("0.01")
    """OpenAI pricing page, built-in tools: web search, $10.00 / 1,000 calls; Anthropic's pricing page: web
    search, $10 per 1,000 searches. For models whose map entry has no ``search_context_cost_per_query``
    (litellm then bills $0, as it did GPT-5's Responses web search)."""
    file_search_call: Decimal = Decimal("0.0025")
    """OpenAI pricing page, built-in tools: file search tool calls, $2.50 / 1,000 calls (Responses API)."""
    vector_storage_gb_day: Decimal = Decimal("0.10")
    """OpenAI pricing page, built-in tools: file search storage, $0.10 / GB per day."""
    vector_storage_free_gb: Decimal = Decimal("1")
    """OpenAI pricing page: the first GB of file search storage is free (per organisation, not per store)."""
    container_session: Decimal = Decimal("0.03")
    """OpenAI pricing page, built-in tools: code interpreter, $0.03 per container (used when the map has no
    ``<provider>/container`` entry)."""
    web_fetch_request: Decimal = Decimal("0")
    """Anthropic docs, web fetch tool: "no additional charges beyond standard token costs"."""
    vector_store_search: Decimal = Decimal("0.0025")
    """``POST /v1/vector_stores/{id}/search``, billed by OpenAI as a file search call ($2.50 / 1,000)."""


DEFAULT_TOOL_PRICES: Final = ToolPrices()
_NAMES: Final = tuple(f.name for f in dataclasses.fields(ToolPrices))


def tool_prices(table: Mapping[str, object] | None) -> ToolPrices:
    """The defaults with ``[pricing.tools]`` applied; refused with the key named when a figure is bad."""
    if not table:
        return DEFAULT_TOOL_PRICES
    changes: dict[str, Decimal] = {}
    for key, value in table.items():
        if key not in _NAMES:
            raise PricingConfigError(f"[pricing.tools]: unknown key {key!r}; valid keys are {', '.join(_NAMES)}")
        changes[key] = _usd(key, value)
    return dataclasses.replace(DEFAULT_TOOL_PRICES, **changes)


def _usd(key: str, value: object) -> Decimal:
    amount: Decimal | None = None
    if isinstance(value, float):
        amount = Decimal(repr(value))  # what was written in the TOML
    elif isinstance(value, int | str) and not isinstance(value, bool):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            amount = None
    if amount is None or not amount.is_finite() or amount < 0:
        raise PricingConfigError(
            f"[pricing.tools]: {key} must be a non-negative price in USD (a number or a decimal string), got {value!r}"
        )
    return amount
