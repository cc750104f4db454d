"""A tighter upper bound on a request's cost, once its prompt is known part by part.

``bound_cost`` prices every prompt token at the highest input-side rate a card has
(cache writes and audio included). When the prompt has been counted, each part is
priced at the highest rate that can really apply to it:

* ``text``: tokens that can only be read as plain input, at the highest input rate
  (any service tier, the size tiers the whole prompt crosses);
* ``write_5m`` / ``write_1h``: tokens the provider may write to its cache with that
  lifetime (Anthropic blocks marked ``cache_control``), at the highest of the input rate
  and that lifetime's write rates; a missing 1-hour rate falls back to the 5-minute one,
  and that to the input rate, as ``price_tokens`` does;
* ``write_any``: tokens a provider may write with any lifetime (OpenAI models that bill
  cache writes), at the highest of all of them;
* ``media``: image, audio and file allowances, at the highest input-side rate of all.

Output is priced at the highest output-side rate, as in ``bound_cost``. Cache reads
are never dearer than input, so they need no part of their own.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Final

from pricing._exact import EXACT, ROUNDING, ZERO
from pricing.catalog import PriceCard
from pricing.cost import _SIZE_TIER, PICO_USD, _bound_rates, _size_tiers, _threshold

_INPUT: Final = "input_cost_per_token"
_WRITE: Final = "cache_creation_input_token_cost"
_ONE_HOUR: Final = "_above_1hr"
_LONG_LIVED: Final = ("_above_1hr", "_above_12hr")


@dataclass(frozen=True, slots=True)
class PromptParts:
    """Upper bounds on a prompt's tokens, by the dearest rate each may be billed at (see the module docstring)."""

    text: int = 0
    write_5m: int = 0
    write_1h: int = 0
    write_any: int = 0
    media: int = 0

    def __post_init__(self) -> None:
        if min(self.text, self.write_5m, self.write_1h, self.write_any, self.media) < 0:
            raise ValueError(f"prompt token bounds must not be negative, got {self}")

    @property
    def total(self) -> int:
        return self.text + self.write_5m + self.write_1h + self.write_any + self.media


@dataclass(frozen=True, slots=True)
class _PartRates:
    text: Decimal
    write_5m: Decimal
    write_1h: Decimal
    write_any: Decimal
    media: Decimal
    output: Decimal


def tight_bound_cost(card: PriceCard, prompt: PromptParts, max_output_tokens: int) -> Decimal:
    """An upper bound on a request's cost from its prompt's parts; rounded up to a whole picodollar."""
    band = sum(1 for threshold, _ in _size_tiers(card) if threshold < prompt.total)
    rates = _part_rates(card, band)
    mul, add = EXACT.multiply, EXACT.add
    bound = ZERO
    for tokens, rate in (
        (prompt.text, rates.text),
        (prompt.write_5m, rates.write_5m),
        (prompt.write_1h, rates.write_1h),
        (prompt.write_any, rates.write_any),
        (prompt.media, rates.media),
        (max_output_tokens, rates.output),
    ):
        bound = add(bound, mul(tokens, rate))
    return bound.quantize(PICO_USD, rounding=ROUND_CEILING, context=ROUNDING)


def output_rate(card: PriceCard, prompt_tokens: int) -> Decimal:
    """The highest rate an output token can be billed at, for a prompt of ``prompt_tokens`` (to size a clamp)."""
    band = sum(1 for threshold, _ in _size_tiers(card) if threshold < prompt_tokens)
    return _part_rates(card, band).output


@functools.lru_cache(maxsize=4096)
def _part_rates(card: PriceCard, band: int) -> _PartRates:
    crossed = {threshold for threshold, _ in sorted(_size_tiers(card))[:band]}
    text = write_5m = write_1h = write_any = ZERO
    for key, rate in card.rates.items():
        tier = _size_tier(key)
        if tier is not None and tier not in crossed:
            continue
        if key.startswith(_INPUT):
            text = max(text, rate)
        elif key.startswith(_WRITE):
            write_any = max(write_any, rate)
            if _ONE_HOUR in key:
                write_1h = max(write_1h, rate)
            elif not any(lifetime in key for lifetime in _LONG_LIVED):
                write_5m = max(write_5m, rate)
    media, output = _bound_rates(card, band)
    write_5m = max(write_5m, text)
    return _PartRates(
        text=text,
        write_5m=write_5m,
        write_1h=max(write_1h, write_5m),
        write_any=max(write_any, write_5m),
        media=media,
        output=output,
    )


def _size_tier(key: str) -> int | None:
    match = _SIZE_TIER.search(key)
    return _threshold(match) if match is not None else None
