"""The largest cost of an image, audio or vector store search request, known before it is forwarded.

Each bound covers every way the answer may be priced (``pricing.units``), so no such request costs
more than it reserved:

- images: ``n`` times the dearest per-image price the map has for the model at the size and quality
  asked for (every size and quality when the request leaves them to the provider), plus the body's
  bytes as input tokens at the dearest input rate (image-token rates included);
- speech: the characters of ``input`` at ``input_cost_per_character``; a model billed by audio tokens
  has no bound Tollgate can know before it speaks, so it is refused under a blocking limit;
- transcriptions: the audio's duration from its WAV header, else its size at 1 kbit/s (no codec
  Tollgate knows of packs speech tighter), at ``input_cost_per_second``; and, for models billed by
  tokens, the body's bytes as input tokens with the model's maximum output;
- a vector store search: one file-search call.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_CEILING, Decimal
from typing import Final

from pricing import PriceCard, ToolPrices, UnitCounts, bound_cost, cost_to_pico, image_variants, price_units
from pricing.cost import PICO_USD
from proxy.dialects.base import RequestFacts
from proxy.dialects.media import IMAGES, SPEECH, TRANSCRIPTION, VECTOR_SEARCH, MediaFacts
from proxy.errors import CostUnbounded
from proxy.limits.bounds import DEFAULT_MAX_OUTPUT_TOKENS

_QUALITIES: Final = ("high", "hd", "medium", "standard", "low")
_SIZES: Final = ("1024x1024", "1024x1536", "1536x1024", "1024x1792", "1792x1024", "512x512", "256x256")
_FLOOR_BITS_PER_SECOND: Final = 1000

Lookup = Callable[[str], PriceCard | None]


def media_bound(
    lookup: Lookup, model: str | None, facts: RequestFacts, body_bytes: int, tools: ToolPrices
) -> tuple[int, str]:
    """(bound in picodollars, how it was reached in words); raises ``CostUnbounded`` when there is none."""
    media = facts.media
    assert media is not None
    if media.kind == VECTOR_SEARCH:
        return cost_to_pico(
            price_units(None, UnitCounts(file_search_calls=1), tools=tools).total
        ), "one file-search call"
    card = lookup(model) if model is not None else None
    if media.kind == IMAGES:
        return _images(lookup, model or "", card, media, body_bytes)
    if card is None:
        raise CostUnbounded(_unpriced(model))
    if media.kind == SPEECH:
        rate = card.unit_rates.get("input_cost_per_character")
        if rate is None:
            raise CostUnbounded(
                f"The model {model!r} is billed by the audio it speaks, which Tollgate cannot know before it "
                "answers, so a spend limit cannot admit this speech request."
            )
        return _pico(rate * media.characters), f"{media.characters:,} characters"
    assert media.kind == TRANSCRIPTION
    bounds: list[tuple[int, str]] = []
    per_second = card.unit_rates.get("input_cost_per_second")
    if per_second is not None:
        ms = media.audio_ms
        words = f"{ms:,} ms of audio (its WAV header)" if ms is not None else ""
        if ms is None:
            ms = media.upload_bytes * 8 * 1000 // _FLOOR_BITS_PER_SECOND
            words = f"{ms:,} ms of audio at most ({media.upload_bytes:,} bytes at 1 kbit/s)"
        bounds.append((_pico(per_second * ms / 1000), words))
    if card.rates:
        output = card.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS
        tokens = f"{body_bytes:,} input tokens at most and {output:,} output tokens"
        bounds.append((cost_to_pico(bound_cost(card, body_bytes, output)), tokens))
    if not bounds:
        raise CostUnbounded(_unpriced(model))
    return max(bounds, key=lambda bound: bound[0])


def _images(lookup: Lookup, model: str, card: PriceCard | None, media: MediaFacts, body_bytes: int) -> tuple[int, str]:
    asked = [media.quality] if media.quality and media.quality != "auto" else list(_QUALITIES)
    sizes = [media.size] if media.size and media.size != "auto" else list(_SIZES)
    prices: list[Decimal] = []
    for quality in asked:
        for size in sizes:
            units = UnitCounts(images=1, image_size=size, image_quality=quality)
            for name in image_variants(model, units):
                variant = lookup(name)
                if variant is not None and variant.model == name:
                    prices.extend(price_units(variant, units, lookup=None).parts.values())
    if card is not None and not prices:
        prices.extend(price_units(card, UnitCounts(images=1, image_size=media.size), lookup=None).parts.values())
    if not prices:
        raise CostUnbounded(
            f"The model {model!r} has no per-image price in Tollgate at the size and quality asked for, so the "
            "cost of this request has no bound and a spend limit cannot admit it."
        )
    per_image = max(prices)
    images = per_image * media.images
    inputs = bound_cost(card, body_bytes, 0) if card is not None else Decimal(0)
    image_rate = card.unit_rates.get("input_cost_per_image_token", Decimal(0)) if card is not None else Decimal(0)
    inputs = max(inputs, image_rate * body_bytes)
    words = f"{media.images} images at ${per_image} at most, and {body_bytes:,} input tokens at most"
    return _pico(images + inputs), words


def _pico(usd: Decimal) -> int:
    return cost_to_pico(usd.quantize(PICO_USD, rounding=ROUND_CEILING))


def _unpriced(model: str | None) -> str:
    return (
        f"The model {model!r} has no price in Tollgate, so the cost of this request has no bound and a spend limit "
        f'cannot admit it. Add its price under [pricing.models."{model}"].'
    )
