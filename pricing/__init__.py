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
from pricing.kinds import KIND_PREFIXES, describe_for_kind, lookup_for_kind, priced_name
from pricing.sheets import PriceFile, PriceFileError, read_price_file
from pricing.tight import PromptParts, output_rate, tight_bound_cost
from pricing.tools import DEFAULT_TOOL_PRICES, ToolPrices, tool_prices
from pricing.units import (
    BYTES_PER_GB,
    NO_UNITS,
    UNIT_COLUMNS,
    UNIT_COUNT_COLUMNS,
    Priced,
    UnitCost,
    UnitCounts,
    image_variants,
    price_units,
    price_usage,
    unit_columns,
)

__all__ = [
    "BYTES_PER_GB",
    "CACHE_WRITE_KINDS",
    "DEFAULT_TOOL_PRICES",
    "KIND_PREFIXES",
    "NO_UNITS",
    "TOKEN_COLUMNS",
    "TOKEN_KINDS",
    "UNIT_COLUMNS",
    "UNIT_COUNT_COLUMNS",
    "Catalog",
    "Cost",
    "PriceCard",
    "Priced",
    "PriceFile",
    "PriceFileError",
    "PriceHistory",
    "PriceVersion",
    "PricingConfigError",
    "PromptParts",
    "TokenCounts",
    "ToolPrices",
    "UnitCost",
    "UnitCounts",
    "bound_cost",
    "cost_to_pico",
    "decimal_text",
    "describe_for_kind",
    "image_variants",
    "lookup_for_kind",
    "output_rate",
    "pico_to_usd",
    "price_tokens",
    "price_units",
    "price_usage",
    "priced_name",
    "tight_bound_cost",
    "read_price_file",
    "token_columns",
    "tool_prices",
    "unit_columns",
]
