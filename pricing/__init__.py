"""Tollgate pricing: a price catalog (litellm's bundled map plus config overrides) and exact costs.

Pure: no I/O beyond reading the price map once, no imports of litellm, httpx or the database.
"""

from __future__ import annotations

from pricing.catalog import Catalog, PriceCard, PricingConfigError
from pricing.cost import Cost, TokenCounts, bound_cost, cost_to_pico, decimal_text, pico_to_usd, price_tokens

__all__ = [
    "Catalog",
    "Cost",
    "PriceCard",
    "PricingConfigError",
    "TokenCounts",
    "bound_cost",
    "cost_to_pico",
    "decimal_text",
    "pico_to_usd",
    "price_tokens",
]
