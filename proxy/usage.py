"""Token usage as providers report it, read from response bodies and stream events.

Pure: bytes and dicts in, ``Usage`` out, and never an exception, whatever the
provider sent. Both OpenAI shapes are understood:

- Chat Completions, Completions and Embeddings: ``prompt_tokens``,
  ``completion_tokens``, ``prompt_tokens_details.{cached_tokens, audio_tokens}``,
  ``completion_tokens_details.{reasoning_tokens, audio_tokens}``;
- Responses: ``input_tokens``, ``output_tokens``,
  ``input_tokens_details.cached_tokens``, ``output_tokens_details.reasoning_tokens``.

Cached, cache-write and audio input are *parts* of the input count, and
reasoning and audio output are parts of the output count, as OpenAI reports
them; pricing takes care never to count them twice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import orjson

from pricing import PriceCard, TokenCounts
from proxy.recording.records import MAX_TIER_CHARS, label_problem

# Where the usage came from, recorded on every row.
REPORTED = "reported"
ESTIMATED = "estimated"
MISSING = "missing"
CLAMPED = "clamped"  # the provider's counts, some cut to what the model could have used

# A count no model can reach: ten times the largest context window in the price map. Counts are also held
# to five times the model's own window (input plus output), which leaves room for maps that lag a provider
# (a beta that widens the window), and the whole row stays within 64-bit integers.
MAX_TOKENS = 100_000_000
_WINDOW_MARGIN = 5

# Responses API stream events that carry the final response with its usage.
FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


@dataclass(frozen=True, slots=True)
class Usage:
    tokens: TokenCounts
    service_tier: str | None = None
    model: str | None = None


def _count(table: Any, key: str) -> int:
    if not isinstance(table, dict):
        return 0
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def usage_from_object(obj: Any) -> Usage | None:
    """Usage of a parsed response object (``{"usage": {...}, "service_tier": ...}``)."""
    if not isinstance(obj, dict):
        return None
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        return None
    # What the provider says is kept only if a row can hold it: a bad value would fail the row's whole batch.
    tier = obj.get("service_tier")
    service_tier = (
        tier if isinstance(tier, str) and len(tier) <= MAX_TIER_CHARS and label_problem(tier) is None else None
    )
    served = obj.get("model")
    model = served if isinstance(served, str) and label_problem(served) is None else None
    if "input_tokens" in usage or "output_tokens" in usage:
        in_details = usage.get("input_tokens_details")
        out_details = usage.get("output_tokens_details")
        short, long = _cache_writes(in_details)
        tokens = TokenCounts(
            input=_count(usage, "input_tokens"),
            cached_input=_count(in_details, "cached_tokens"),
            cache_write=short,
            cache_write_12h=long,
            audio_input=_count(in_details, "audio_tokens"),
            output=_count(usage, "output_tokens"),
            reasoning=_count(out_details, "reasoning_tokens"),
            audio_output=_count(out_details, "audio_tokens"),
        )
    else:
        in_details = usage.get("prompt_tokens_details")
        out_details = usage.get("completion_tokens_details")
        short, long = _cache_writes(in_details)
        tokens = TokenCounts(
            input=_count(usage, "prompt_tokens"),
            cached_input=_count(in_details, "cached_tokens") or _count(usage, "cache_read_input_tokens"),
            cache_write=short or _count(usage, "cache_creation_input_tokens"),
            cache_write_12h=long,
            audio_input=_count(in_details, "audio_tokens"),
            output=_count(usage, "completion_tokens"),
            reasoning=_count(out_details, "reasoning_tokens"),
            audio_output=_count(out_details, "audio_tokens"),
        )
    return Usage(tokens=tokens, service_tier=service_tier, model=model)


def _cache_writes(details: Any) -> tuple[int, int]:
    """(30-minute, 12-hour) cache writes from OpenAI's token details.

    ``cache_write_tokens`` is every write; ``cache_write_tokens_details`` may split off the 12-hour ones,
    and what the split leaves is priced at the 30-minute rate, never dropped. ``cache_creation_tokens`` is
    the older name.
    """
    total = _count(details, "cache_write_tokens") or _count(details, "cache_creation_tokens")
    split = details.get("cache_write_tokens_details") if isinstance(details, dict) else None
    long = min(_count(split, "ttl_12h_tokens"), total)
    return total - long, long


def clamp_usage(usage: Usage, card: PriceCard | None) -> tuple[Usage, bool]:
    """``usage`` with impossible counts cut to what the model could have used, and whether any were."""
    ceiling = MAX_TOKENS
    if card is not None and card.max_input_tokens and card.max_output_tokens:
        ceiling = min(ceiling, _WINDOW_MARGIN * (card.max_input_tokens + card.max_output_tokens))
    tokens = usage.tokens
    counts = dataclasses.astuple(tokens)
    if max(counts) <= ceiling:
        return usage, False
    clamped = TokenCounts(*(min(count, ceiling) for count in counts))
    return dataclasses.replace(usage, tokens=clamped), True


def usage_from_body(body: bytes) -> Usage | None:
    """Usage of a whole JSON response body, or None when it has none."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return usage_from_object(obj)


def usage_from_event(data: bytes) -> Usage | None:
    """Usage carried by one SSE ``data:`` payload, or None.

    A chat or completions chunk carries it at the top level (the final chunk,
    when ``stream_options.include_usage`` is on); a Responses API stream carries
    it in the ``response`` of its ``response.completed`` event.
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return usage_from_event_object(obj)


def usage_from_event_object(obj: Any) -> Usage | None:
    """Usage carried by one parsed SSE ``data:`` payload, or None (see ``usage_from_event``)."""
    if not isinstance(obj, dict):
        return None
    if obj.get("type") in FINAL_RESPONSE_EVENTS:
        return usage_from_object(obj.get("response"))
    return usage_from_object(obj)
