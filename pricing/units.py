"""Units a provider bills besides tokens, and their prices: hosted tools, images, audio, storage.

A request's ``UnitCounts`` say what it used, as its answer shows (never what it declared):
web searches and their context size, file-search calls, code-interpreter container sessions,
other server-tool requests, grounding queries, images with their size and quality (and the
image tokens gpt-image-1 reports, parts of the token counts), characters and milliseconds of
audio, and bytes of vector storage for one day.

Where each price comes from (``price_units``):

- web searches: the card's ``search_context_cost_per_query`` at the context size used
  (``medium`` when the answer does not say), litellm's map; else ``ToolPrices.web_search_call``;
- grounding queries (Gemini): the same figure, once per grounded prompt when the card's
  ``web_search_billing_unit`` is ``per_prompt`` (litellm's default, Gemini 2.x), once per
  query when it is ``per_query``;
- container sessions: ``code_interpreter_cost_per_session`` of the map's ``openai/container``
  (``azure/container`` at Azure), else ``ToolPrices.container_session``;
- file-search calls, vector storage, server-tool requests (web fetch): ``pricing.tools``;
- image tokens: ``input_cost_per_image_token`` / ``output_cost_per_image_token``; images
  without usage: the map's ``<quality>/<size>/<model>`` entry (per image, or per pixel), else
  the card's ``output_cost_per_image``;
- characters: ``input_cost_per_character``; audio seconds: ``input_cost_per_second``. Both
  only when the answer reports no tokens: gpt-4o-mini-tts and gpt-4o-transcribe bill tokens.

Rounding: each unit's cost is rounded once, to a picodollar (``ROUND_HALF_EVEN``), and a row's
cost is the token cost (itself rounded once) plus those parts. A unit that was used but has no
price is named in ``UnitCost.unpriced``, never priced at zero.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

from pricing._exact import EXACT, ROUNDING, ZERO
from pricing.catalog import SEARCH_CONTEXT, PriceCard
from pricing.cost import PICO_USD, Cost, TokenCounts, price_tokens
from pricing.tools import DEFAULT_TOOL_PRICES, ToolPrices

SEARCH_CONTEXT_SIZES: Final = frozenset({"low", "medium", "high"})
BYTES_PER_GB: Final = 10**9  # storage is billed per GB, as the provider's page writes it (decimal)
_MS_PER_SECOND: Final = 1000

Lookup = Callable[[str], PriceCard | None]


@dataclass(frozen=True, slots=True)
class UnitCounts:
    """What one request (or one day of storage) used besides tokens; field names are the row's column names."""

    web_search_calls: int = 0
    search_context_size: str | None = None
    file_search_calls: int = 0
    container_sessions: int = 0
    server_tool_requests: int = 0  # Anthropic server tools other than web search (web fetch)
    grounding_queries: int = 0
    images: int = 0
    image_size: str | None = None
    image_quality: str | None = None
    image_tokens_in: int = 0  # part of the token counts' input
    image_tokens_out: int = 0  # part of the token counts' output
    audio_characters: int = 0
    audio_ms: int = 0
    storage_bytes: int = 0
    storage_free_bytes: int = 0  # the part of storage_bytes inside the free allowance

    def __post_init__(self) -> None:
        if min(getattr(self, name) for name in UNIT_COUNT_COLUMNS) < 0:
            raise ValueError(f"unit counts must not be negative, got {self}")
        if self.search_context_size is not None and self.search_context_size not in SEARCH_CONTEXT_SIZES:
            raise ValueError(f"search_context_size must be low, medium or high, got {self.search_context_size!r}")

    def __bool__(self) -> bool:
        # Most answers use no units, and say so with NO_UNITS itself: asked on every priced row.
        return self is not NO_UNITS and any(getattr(self, name) for name in UNIT_COUNT_COLUMNS)


#: Every unit column of a usage row, in ``UnitCounts`` order.
UNIT_COLUMNS: Final = tuple(f.name for f in dataclasses.fields(UnitCounts))
#: Those that are counts (integers); the others are labels (size, quality, context).
UNIT_COUNT_COLUMNS: Final = tuple(f.name for f in dataclasses.fields(UnitCounts) if f.type == "int")
NO_UNITS: Final = UnitCounts()
_NO_UNIT_COLUMNS: Final = {name: getattr(NO_UNITS, name) for name in UNIT_COLUMNS}


def unit_columns(units: UnitCounts) -> dict[str, Any]:
    """``units`` as a usage row's columns (for most rows, none used: one shared mapping, not to be changed)."""
    if units is NO_UNITS:
        return _NO_UNIT_COLUMNS
    return {name: getattr(units, name) for name in UNIT_COLUMNS}


@dataclass(frozen=True, slots=True)
class UnitCost:
    """The cost of each unit used, each rounded once to 1e-12 USD; ``unpriced`` names units with no price."""

    parts: Mapping[str, Decimal] = field(default_factory=dict)
    unpriced: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", MappingProxyType(dict(self.parts)))

    @property
    def total(self) -> Decimal:
        total = ZERO
        for part in self.parts.values():
            total = EXACT.add(total, part)
        return total


_NO_UNIT_COST: Final = UnitCost()


@dataclass(frozen=True, slots=True)
class Priced:
    """A request's cost: its tokens' (rounded once) and its units' (each rounded once); ``total`` is their sum."""

    tokens: Cost
    units: UnitCost

    @property
    def total(self) -> Decimal:
        return EXACT.add(self.tokens.total, self.units.total)


def price_usage(
    card: PriceCard,
    tokens: TokenCounts,
    units: UnitCounts = NO_UNITS,
    service_tier: str | None = None,
    *,
    tools: ToolPrices = DEFAULT_TOOL_PRICES,
    lookup: Lookup | None = None,
    kind: str | None = None,
) -> Priced:
    """Price tokens and units together; image tokens leave the token counts and are priced at image rates."""
    if units.image_tokens_in or units.image_tokens_out:
        tokens = dataclasses.replace(
            tokens,
            input=max(tokens.input - units.image_tokens_in, 0),
            output=max(tokens.output - units.image_tokens_out, 0),
        )
    token_cost = price_tokens(card, tokens, service_tier)
    return Priced(token_cost, price_units(card, units, tokens=tokens, tools=tools, lookup=lookup, kind=kind))


def price_units(
    card: PriceCard | None,
    units: UnitCounts,
    *,
    tokens: TokenCounts | None = None,
    tools: ToolPrices = DEFAULT_TOOL_PRICES,
    lookup: Lookup | None = None,
    kind: str | None = None,
) -> UnitCost:
    """The cost of ``units``; ``tokens`` tells whether audio was billed by tokens (see the module docstring)."""
    if not units:
        return _NO_UNIT_COST
    rates = card.unit_rates if card is not None else {}
    parts: dict[str, Decimal] = {}
    unpriced: list[str] = []

    def charge(name: str, count: int | Decimal, rate: Decimal | None) -> None:
        if not count:
            return
        if rate is None:
            unpriced.append(name)
        else:
            parts[name] = EXACT.multiply(count, rate).quantize(PICO_USD, context=ROUNDING)

    search_rate = rates.get(f"{SEARCH_CONTEXT}.{units.search_context_size or 'medium'}")
    charge("web_search_calls", units.web_search_calls, tools.web_search_call if search_rate is None else search_rate)
    per_prompt = (card.web_search_billing_unit if card is not None else None) in (None, "per_prompt")
    grounded = min(units.grounding_queries, 1) if per_prompt else units.grounding_queries
    charge("grounding_queries", grounded, rates.get(f"{SEARCH_CONTEXT}.medium"))
    per_1k = rates.get("file_search_cost_per_1k_calls")
    charge(
        "file_search_calls", units.file_search_calls, EXACT.divide(per_1k, 1000) if per_1k else tools.file_search_call
    )
    charge("container_sessions", units.container_sessions, container_rate(tools, lookup, kind))
    charge("server_tool_requests", units.server_tool_requests, tools.web_fetch_request)
    if units.image_tokens_in or units.image_tokens_out:
        base = card.rates if card is not None else {}
        charge(
            "image_tokens_in",
            units.image_tokens_in,
            rates.get("input_cost_per_image_token", base.get("input_cost_per_token")),
        )
        charge(
            "image_tokens_out",
            units.image_tokens_out,
            rates.get("output_cost_per_image_token", base.get("output_cost_per_token")),
        )
    else:
        charge("images", units.images, _image_rate(card, units, lookup))
    by_tokens = tokens is not None and (tokens.input > 0 or tokens.output > 0)
    if not by_tokens:
        charge("audio_characters", units.audio_characters, rates.get("input_cost_per_character"))
        per_second = rates.get("input_cost_per_second")
        charge("audio_ms", units.audio_ms, EXACT.divide(per_second, _MS_PER_SECOND) if per_second else per_second)
    billable = max(units.storage_bytes - units.storage_free_bytes, 0)
    storage_rate = rates.get("vector_store_cost_per_gb_per_day", tools.vector_storage_gb_day)
    if units.storage_bytes:
        parts["storage_bytes"] = EXACT.divide(EXACT.multiply(billable, storage_rate), BYTES_PER_GB).quantize(
            PICO_USD, context=ROUNDING
        )
    return UnitCost(parts, tuple(unpriced))


def container_rate(tools: ToolPrices, lookup: Lookup | None, kind: str | None) -> Decimal:
    """USD per container at a provider of ``kind``: the map's ``<provider>/container``, else the table's."""
    container = lookup(f"{'azure' if kind == 'azure' else 'openai'}/container") if lookup is not None else None
    rate = container.unit_rates.get("code_interpreter_cost_per_session") if container is not None else None
    return rate if rate is not None else tools.container_session


def image_variants(model: str, units: UnitCounts) -> list[str]:
    """The map's names for ``model`` at the image size and quality used: ``[azure/]hd/1024-x-1792/dall-e-3``."""
    if not units.image_size:
        return []
    size = units.image_size.replace("x", "-x-")
    prefix, _, base = model.rpartition("/")
    lead = f"{prefix}/" if prefix else ""
    names = [f"{lead}{units.image_quality}/{size}/{base}"] if units.image_quality else []
    return [*names, f"{lead}standard/{size}/{base}", f"{lead}{size}/{base}"]


def _image_rate(card: PriceCard | None, units: UnitCounts, lookup: Lookup | None) -> Decimal | None:
    """USD per image: the map's ``<quality>/<size>/<model>`` entry, else the card's own per-image price."""
    if card is None:
        return None
    size = units.image_size.replace("x", "-x-") if units.image_size else None
    names = image_variants(card.model, units) if lookup is not None and card.model.count("/") < 2 else []
    for name in names:  # (a card with two slashes is a variant already)
        variant = lookup(name) if lookup is not None else None
        if variant is not None and variant.model == name:
            rate = _per_image(variant, size)
            if rate is not None:
                return rate
    return _per_image(card, size)


def _per_image(card: PriceCard, size: str | None) -> Decimal | None:
    for key in ("input_cost_per_image", "output_cost_per_image"):
        rate = card.unit_rates.get(key)
        if rate:
            return rate
    per_pixel = card.unit_rates.get("input_cost_per_pixel") or card.unit_rates.get("output_cost_per_pixel")
    if per_pixel and size is not None:
        width, _, height = size.partition("-x-")
        if width.isdigit() and height.isdigit():
            return EXACT.multiply(per_pixel, int(width) * int(height))
    return None
