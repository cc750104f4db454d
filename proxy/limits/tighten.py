"""The second look at a request the byte bound would refuse: count its prompt, bound it again, or clamp it.

The byte bound (``proxy.limits.bounds.request_bound``) costs nothing and is loose. Only
when it would refuse a request does Tollgate count the prompt (``count_prompt``):

- OpenAI and Azure: offline, with the model's tiktoken encoding (``proxy.limits.prompt_count``);
- Anthropic and Gemini: one round trip to the provider's free count endpoint
  (``proxy.limits.provider_count``), through the ``Count`` the front door gives (the
  in-process meter gives none: its prompts keep the byte bound);
- anything else, or a count that fails: no tighter bound, and the refusal stands.

Each counted part is priced at the dearest rate that can apply to it (``pricing.tight``):
a cache write only where the provider can write (Anthropic's ``cache_control`` prefixes,
with their lifetime; OpenAI models whose prices include cache writes).

``clamped_cap`` sizes a lower output cap for a limit with ``on_exceed = "clamp"``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pricing import PriceCard, PromptParts, cost_to_pico, output_rate, tight_bound_cost
from pricing.cost import PICO_PER_USD
from proxy.dialects.base import RequestFacts
from proxy.limits import tokenizer
from proxy.limits.bounds import DEFAULT_MAX_OUTPUT_TOKENS, tight_request_bound
from proxy.limits.prompt_count import cache_marks, count_openai
from proxy.limits.provider_count import (
    CountRequest,
    anthropic_count,
    gemini_count,
    read_anthropic_count,
    read_gemini_count,
    with_margin,
)

Count = Callable[[CountRequest], Awaitable[bytes | None]]
"""Sends a count request to the request's provider; the answer's body if it was a 200, else None."""

_WRITE_RATE = "cache_creation_input_token_cost"


@dataclass(frozen=True, slots=True)
class PromptBound:
    """A request's prompt, bounded part by part, for one model turn."""

    card: PriceCard
    parts: PromptParts
    how: str


def byte_prompt(card: PriceCard, facts: RequestFacts, body_bytes: int, media_tokens: int) -> PromptBound:
    """The byte bound's prompt as parts: every token at the dearest input-side rate (for a clamp without a count)."""
    media = f" + {facts.media_parts} media parts" if facts.media_parts else ""
    tokens = body_bytes + facts.media_parts * media_tokens
    return PromptBound(card, PromptParts(media=tokens), f"{body_bytes:,} body bytes{media}")


def countable(facts: RequestFacts) -> bool:
    """Whether counting the prompt can bound the request: input stored at the provider cannot be counted here."""
    return not facts.stored_input and (not facts.hosted_tools or facts.max_tool_calls is not None)


async def count_prompt(
    kind: str,
    card: PriceCard,
    facts: RequestFacts,
    payload: dict[str, Any],
    body_bytes: int,
    path: str,
    media_tokens: int,
    count: Count | None,
) -> PromptBound | None:
    """The prompt counted as tightly as its provider allows, or None when it cannot be (see the module docstring)."""
    if not countable(facts):
        return None
    if kind in ("openai", "azure"):
        name = tokenizer.encoding_name(facts.model or "") or tokenizer.encoding_name(card.model)
        if name is None:
            return None
        encoding = await asyncio.to_thread(tokenizer.encoding, name)  # loaded once; the first may take seconds
        if encoding is None:
            return None
        counted = count_openai(payload, body_bytes, encoding, media_tokens)
        # OpenAI caches prefixes on its own: where a model's prices include cache writes, any token may be one.
        writes = any(key.startswith(_WRITE_RATE) for key in card.rates)
        parts = PromptParts(
            text=0 if writes else counted.tokens, write_any=counted.tokens if writes else 0, media=counted.media
        )
        return PromptBound(card, parts, f"counted with tiktoken {name}, with the chat format's overhead")
    if count is None:
        return None
    if kind == "anthropic":
        answer = await count(anthropic_count(payload))
        counted_tokens = read_anthropic_count(answer) if answer is not None else None
        if counted_tokens is None:
            return None
        total = with_margin(counted_tokens)
        marks = cache_marks(payload)
        upto_1h, upto_last = min(total, marks.upto_1h), min(total, marks.upto_last)
        parts = PromptParts(text=total - upto_last, write_5m=upto_last - upto_1h, write_1h=upto_1h)
        written = f"; {upto_last:,} may be cache writes" if upto_last else ""
        return PromptBound(card, parts, f"Anthropic's count_tokens, with a margin{written}")
    if kind == "gemini":
        request = gemini_count(path, payload, facts.model or card.model)
        answer = await count(request) if request is not None else None
        counted_tokens = read_gemini_count(answer) if answer is not None else None
        if counted_tokens is None:
            return None
        total = with_margin(counted_tokens)
        # Audio is billed at its own rate, and the count does not say how much of the prompt it is.
        parts = PromptParts(media=total) if facts.media_parts else PromptParts(text=total)
        return PromptBound(card, parts, "Gemini's countTokens, with a margin")
    return None


def bound_of(prompt: PromptBound, facts: RequestFacts, *, embeddings: bool) -> tuple[int, str]:
    """(bound in picodollars, in words) of the request with ``prompt``."""
    return tight_request_bound(prompt.card, facts, prompt.parts, prompt.how, embeddings=embeddings)


def clamped_cap(prompt: PromptBound, facts: RequestFacts, remaining_pico: int, min_output_tokens: int) -> int | None:
    """The largest output cap whose bound fits in ``remaining_pico``; None if it is under ``min_output_tokens``."""
    steps = 1 + ((facts.max_tool_calls or 0) if facts.hosted_tools else 0)
    turns = PromptParts(*(part * steps for part in _astuple(prompt.parts)))
    prompt_pico = cost_to_pico(tight_bound_cost(prompt.card, turns, 0))
    per_token = output_rate(prompt.card, turns.total) * PICO_PER_USD * facts.choices * steps
    original = facts.output_cap or prompt.card.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS
    room = remaining_pico - prompt_pico
    if room <= 0:
        return None
    cap = original if per_token <= 0 else min(original, math.floor(Decimal(room) / per_token))
    if cap < min_output_tokens:
        return None
    return cap


def _astuple(parts: PromptParts) -> tuple[int, int, int, int, int]:
    return (parts.text, parts.write_5m, parts.write_1h, parts.write_any, parts.media)
