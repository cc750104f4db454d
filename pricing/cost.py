"""Turning token counts into money, exactly.

Every product and sum is exact ``Decimal`` arithmetic (in a context that raises rather
than round). The one rounding is of ``Cost.total``, to 1e-12 USD (one picodollar,
``ROUND_HALF_EVEN``); picodollars are the integer unit Tollgate stores. The components
of a :class:`Cost` are left unrounded, and the total is their exact sum, rounded once.

Which rate applies:

* Size tiers: a litellm key ``<rate>_above_<N>k_tokens`` applies when the request's
  total input tokens are strictly more than N thousand. Each rate takes its highest
  crossed tier, so every rate with a variant for that tier uses it.
* Service tiers: ``priority``, ``flex`` and ``batch`` (litellm's ``_batches`` keys)
  select ``<rate>_<suffix>`` when the card has it. The preference is size tier with
  service tier, then size tier alone, then service tier alone, then the base rate.
  ``default``, ``auto``, None or an unknown tier use the base rates.
* Missing rates fall back: cache reads and 5-minute cache writes and audio input to the
  input rate, 1-hour cache writes to the 5-minute write rate, reasoning and audio
  output to the output rate.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any, Final

from pricing._exact import EXACT, ROUNDING, ZERO
from pricing.catalog import PriceCard

PICO_USD: Final = Decimal("0.000000000001")
PICO_PER_USD: Final = 10**12

_INPUT: Final = "input_cost_per_token"
_OUTPUT: Final = "output_cost_per_token"
_CACHE_READ: Final = "cache_read_input_token_cost"
_CACHE_WRITE: Final = "cache_creation_input_token_cost"
_CACHE_WRITE_1H: Final = "cache_creation_input_token_cost_above_1hr"
_CACHE_WRITE_12H: Final = "cache_creation_input_token_cost_above_12hr"
_REASONING: Final = "output_cost_per_reasoning_token"
_AUDIO_INPUT: Final = "input_cost_per_audio_token"
_AUDIO_OUTPUT: Final = "output_cost_per_audio_token"
_INPUT_RATES: Final = (_INPUT, _CACHE_READ, _CACHE_WRITE, _AUDIO_INPUT)
_OUTPUT_RATES: Final = (_OUTPUT, _REASONING, _AUDIO_OUTPUT)
_SERVICE_TIER_SUFFIXES: Final = {"priority": "priority", "flex": "flex", "batch": "batches"}
# "_above_1hr" is a cache lifetime, not a size tier, hence the digits-then-"tokens" shape.
_SIZE_TIER: Final = re.compile(r"_(above_(\d+)(k?)_tokens)(?:_[a-z]+)?$")


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """Tokens one request used. ``input`` and ``output`` are totals; the others are parts of them.

    ``input`` includes cached, cache-written and audio tokens (as OpenAI's
    prompt count does); ``output`` includes reasoning and audio tokens.
    """

    input: int = 0
    cached_input: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    cache_write_12h: int = 0
    """OpenAI's 12-hour cache writes; ``cache_write`` holds the short lifetime (Anthropic's 5 minutes, OpenAI's 30)."""
    output: int = 0
    reasoning: int = 0
    audio_input: int = 0
    audio_output: int = 0

    def __post_init__(self) -> None:
        inputs = (self.input, self.cached_input, self.cache_write, self.cache_write_1h, self.cache_write_12h)
        if min(*inputs, self.audio_input, self.output, self.reasoning, self.audio_output) < 0:
            raise ValueError(f"token counts must not be negative, got {self}")


#: Every kind of token a request counts, in ``TokenCounts`` order: the one list the store, the records,
#: the metrics, the invoices and the reports derive theirs from.
TOKEN_KINDS: Final = tuple(f.name for f in dataclasses.fields(TokenCounts))
#: Their column names on a usage row: ``input_tokens``, ``cached_input_tokens``, ...
TOKEN_COLUMNS: Final = tuple(f"{kind}_tokens" for kind in TOKEN_KINDS)
_TOKEN_VALUES = operator.attrgetter(*TOKEN_KINDS)  # every count in one call, in TOKEN_KINDS order
#: The cache write kinds, one per lifetime; rollups and metrics add them up as one.
CACHE_WRITE_KINDS: Final = tuple(kind for kind in TOKEN_KINDS if kind.startswith("cache_write"))


def token_columns(tokens: TokenCounts) -> dict[str, Any]:
    """``tokens`` as a usage row's columns (``Any``: they are spread into a record whose other fields vary)."""
    return dict(zip(TOKEN_COLUMNS, _TOKEN_VALUES(tokens), strict=True))


@dataclass(frozen=True, slots=True)
class Cost:
    """What one request cost, in USD, split by kind of token.

    ``input`` and ``output`` are the plain text parts; ``cache_write`` covers both cache
    lifetimes; ``audio`` covers audio input and output. ``total`` is the exact sum rounded
    once to 1e-12 USD. ``tier`` is the size tier applied (e.g. ``"above_200k_tokens"``)
    and ``service_tier`` the service tier whose rates were used, if any.
    """

    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal
    audio: Decimal
    total: Decimal
    tier: str | None = None
    service_tier: str | None = None


class _RatePicker:
    """Chooses, for one card, size tier band and service tier, which variant of each rate applies."""

    __slots__ = ("_rates", "_tiers", "_suffix", "tier", "tier_threshold", "service_tier_used")

    def __init__(self, card: PriceCard, tiers: tuple[tuple[int, str], ...], suffix: str | None) -> None:
        self._rates = card.rates
        self._tiers = tiers
        self._suffix = suffix
        self.tier: str | None = None
        self.tier_threshold = -1
        self.service_tier_used = False

    def rate(self, base: str, fallback: Decimal) -> Decimal:
        for threshold, tier in self._tiers:
            found = self._find(f"{base}_{tier}")
            if found is not None:
                if threshold > self.tier_threshold:
                    self.tier, self.tier_threshold = tier, threshold
                return found
        found = self._find(base)
        return fallback if found is None else found

    def _find(self, key: str) -> Decimal | None:
        if self._suffix is not None:
            with_service_tier = self._rates.get(f"{key}_{self._suffix}")
            if with_service_tier is not None:
                self.service_tier_used = True
                return with_service_tier
        return self._rates.get(key)


@dataclass(frozen=True, slots=True)
class _Rates:
    """The rate of each kind of token for one card, size tier band and service tier (see ``_rates``)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal
    cache_write_12h: Decimal
    reasoning: Decimal
    audio_input: Decimal
    audio_output: Decimal
    tier: str | None
    service_tier_used: bool


# Every priced row asks this; the answer depends only on the card, how many size tiers its input
# crosses and the service tier, so it is worked out once for each.
@functools.lru_cache(maxsize=4096)
def _rates(card: PriceCard, band: int, suffix: str | None) -> _Rates:
    tiers = _size_tiers(card)
    pick = _RatePicker(card, tiers[len(tiers) - band :], suffix)
    input_rate = pick.rate(_INPUT, ZERO)
    output_rate = pick.rate(_OUTPUT, ZERO)
    cache_write_rate = pick.rate(_CACHE_WRITE, input_rate)
    return _Rates(
        input=input_rate,
        output=output_rate,
        cache_read=pick.rate(_CACHE_READ, input_rate),
        cache_write=cache_write_rate,
        cache_write_1h=pick.rate(_CACHE_WRITE_1H, cache_write_rate),
        cache_write_12h=pick.rate(_CACHE_WRITE_12H, cache_write_rate),
        reasoning=pick.rate(_REASONING, output_rate),
        audio_input=pick.rate(_AUDIO_INPUT, input_rate),
        audio_output=pick.rate(_AUDIO_OUTPUT, output_rate),
        tier=pick.tier,
        service_tier_used=pick.service_tier_used,
    )


def price_tokens(card: PriceCard, tokens: TokenCounts, service_tier: str | None = None) -> Cost:
    """Price one request's tokens with ``card``; ``service_tier`` is the one the response reports."""
    tiers = _size_tiers(card)
    band = sum(1 for threshold, _ in tiers if threshold < tokens.input) if tiers else 0
    suffix = _SERVICE_TIER_SUFFIXES.get(service_tier.lower()) if service_tier else None
    rates = _rates(card, band, suffix)
    # Cached, cache-written and audio tokens are parts of input: take them out, so none is paid twice.
    writes = tokens.cache_write + tokens.cache_write_1h + tokens.cache_write_12h
    uncached = tokens.input - tokens.cached_input - writes - tokens.audio_input
    text_output = tokens.output - tokens.reasoning - tokens.audio_output
    mul, add = EXACT.multiply, EXACT.add
    cost_input = mul(max(uncached, 0), rates.input)
    cached_input = mul(tokens.cached_input, rates.cache_read)
    cache_write = add(
        mul(tokens.cache_write, rates.cache_write),
        add(mul(tokens.cache_write_1h, rates.cache_write_1h), mul(tokens.cache_write_12h, rates.cache_write_12h)),
    )
    cost_output = mul(max(text_output, 0), rates.output)
    reasoning = mul(tokens.reasoning, rates.reasoning)
    audio = add(mul(tokens.audio_input, rates.audio_input), mul(tokens.audio_output, rates.audio_output))
    exact_total = add(add(add(cost_input, cached_input), add(cache_write, cost_output)), add(reasoning, audio))
    return Cost(
        input=cost_input,
        cached_input=cached_input,
        cache_write=cache_write,
        output=cost_output,
        reasoning=reasoning,
        audio=audio,
        # The only rounding in pricing: see the module docstring.
        total=exact_total.quantize(PICO_USD, context=ROUNDING),
        tier=rates.tier,
        service_tier=service_tier.lower() if rates.service_tier_used and service_tier else None,
    )


def bound_cost(card: PriceCard, input_tokens: int, max_output_tokens: int) -> Decimal:
    """An upper bound on a request's cost, for holding spend before the request runs.

    Input is priced at the highest input-side rate (text, cache, audio, any service
    tier) and output at the highest output-side rate (text, reasoning, audio), counting
    size tiers that ``input_tokens`` crosses. ``input_tokens`` must itself be an upper
    bound of the prompt size. Rounded up to a whole picodollar.
    """
    band = sum(1 for threshold, _ in _size_tiers(card) if threshold < input_tokens)
    input_rate, output_rate = _bound_rates(card, band)
    bound = EXACT.add(EXACT.multiply(input_tokens, input_rate), EXACT.multiply(max_output_tokens, output_rate))
    return bound.quantize(PICO_USD, rounding=ROUND_CEILING, context=ROUNDING)


def cost_to_pico(cost: Decimal) -> int:
    """``cost`` in USD as integer picodollars; it must already be a whole number of them."""
    pico = EXACT.multiply(cost, PICO_PER_USD)
    if pico != pico.to_integral_value():
        raise ValueError(f"{cost} USD is not a whole number of picodollars; price it with price_tokens first")
    return int(pico)


def decimal_text(amount: Decimal) -> str:
    """``amount`` as text in positional notation, as finance reads it: ``0.00000015``, never ``1.5E-7``."""
    return format(amount, "f")


def pico_to_usd(pico: int) -> Decimal:
    """Integer picodollars as USD."""
    return EXACT.divide(pico, PICO_PER_USD)


# Scanning a card's keys with a regex costs more than the rest of pricing; do it once per card.
@functools.lru_cache(maxsize=1024)
def _size_tiers(card: PriceCard) -> tuple[tuple[int, str], ...]:
    tiers = {tier[1]: _threshold(tier) for key in card.rates if (tier := _SIZE_TIER.search(key)) is not None}
    return tuple(sorted(((threshold, name) for name, threshold in tiers.items()), reverse=True))


@functools.lru_cache(maxsize=4096)
def _bound_rates(card: PriceCard, band: int) -> tuple[Decimal, Decimal]:
    """Highest input-side and output-side rates once the ``band`` lowest size tiers are crossed.

    Cached: ``bound_cost`` runs for every request that a spend limit applies to.
    """
    crossed = {threshold for threshold, _ in sorted(_size_tiers(card))[:band]}
    input_rate = output_rate = ZERO
    for key, rate in card.rates.items():
        tier = _SIZE_TIER.search(key)
        if tier is not None and _threshold(tier) not in crossed:
            continue
        if key.startswith(_INPUT_RATES):
            input_rate = max(input_rate, rate)
        elif key.startswith(_OUTPUT_RATES):
            output_rate = max(output_rate, rate)
    return input_rate, output_rate


def _threshold(tier: re.Match[str]) -> int:
    return int(tier[2]) * (1000 if tier[3] else 1)
