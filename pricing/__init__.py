"""Tollgate pricing: a price catalog (litellm's bundled map plus config overrides) and exact costs.

Pure: no I/O beyond reading the price map once, no imports of litellm, httpx or the database.
"""

from __future__ import annotations

from pricing.catalog import Catalog, PriceCard, PricingConfigError
from pricing.cost import (
    CACHE_WRITE_KINDS,
    TOKEN_COLUMNS,
    TOKEN_KINDS,
    Cost,
    TokenCounts,
    bound_cost,
    cost_to_pico,
    decimal_text,
    pico_to_usd,
    price_tokens,
    token_columns,
)
from pricing.history import PriceHistory, PriceVersion
from pricing.kinds import KIND_PREFIXES, lookup_for_kind, priced_name
from pricing.sheets import PriceFile, PriceFileError, read_price_file

__all__ = [
    "CACHE_WRITE_KINDS",
    "KIND_PREFIXES",
    "TOKEN_COLUMNS",
    "TOKEN_KINDS",
    "Catalog",
    "Cost",
    "PriceCard",
    "PriceFile",
    "PriceFileError",
    "PriceHistory",
    "PriceVersion",
    "PricingConfigError",
    "TokenCounts",
    "bound_cost",
    "cost_to_pico",
    "decimal_text",
    "lookup_for_kind",
    "pico_to_usd",
    "price_tokens",
    "priced_name",
    "read_price_file",
    "token_columns",
]
