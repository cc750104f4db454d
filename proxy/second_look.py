"""A request the byte bound would refuse gets a second look before it is refused.

``MeteredCall.reserve`` calls ``second_look`` when reserving the byte bound failed:

1. count the prompt (``proxy.limits.tighten.count_prompt``) and reserve the tighter bound;
2. if that does not fit either, and every limit that cannot take the request is one with
   ``on_exceed = "clamp"``, lower the request's output cap to what the budget left covers
   (``clamped_cap``), rewrite its body through the dialect, and reserve that bound;
3. else the refusal stands, naming the tightest bound it tried.

Only a request that would otherwise be refused pays for any of this, and a request whose
answer may come from several priced models (fallbacks, ``bound_models``, a substitution
seen before) keeps its bound over all of them: it is not looked at again.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pricing import PriceCard, PromptParts, cost_to_pico, tight_bound_cost
from proxy.errors import SpendLimitExceeded
from proxy.limits.bounds import output_bound
from proxy.limits.budget import Admission
from proxy.limits.rules import Counter
from proxy.limits.tighten import Count, PromptBound, bound_of, byte_prompt, clamped_cap, count_prompt

if TYPE_CHECKING:
    from proxy.core import MeteredCall

logger = logging.getLogger("tollgate.limits")


async def second_look(
    call: MeteredCall, counters: Sequence[Counter], bound: int, refusal: SpendLimitExceeded, count: Count | None
) -> Admission:
    """An admission with a tighter bound, or with a clamped output cap; else ``refusal`` is raised."""
    metering, facts, payload, endpoint, provider = call.metering, call.facts, call.payload, call.endpoint, call.provider
    if payload is None or endpoint is None or provider is None or facts.model is None:
        raise refusal
    if facts.fallback_models or provider.bound_models or metering.substitutes.get((provider.name, facts.model)):
        raise refusal
    card = call.price_card(call.priced_as or facts.model)
    if card is None:
        raise refusal
    budget = metering.budget
    if not endpoint.embeddings and _output_alone_overflows(call, counters, card):
        raise refusal  # past the limit already: no round trip to count a prompt that cannot change the answer
    prompt = await count_prompt(
        provider.kind, card, facts, payload, len(call.body), call.raw_path, metering.media_tokens, count
    )
    if prompt is not None:
        tight, why = bound_of(prompt, facts, embeddings=endpoint.embeddings)
        if tight < bound:
            try:
                return await budget.admit(counters, tight, why)
            except SpendLimitExceeded as again:
                refusal, bound = again, tight
    if endpoint.embeddings:
        raise refusal
    prompt = prompt or byte_prompt(card, facts, len(call.body), metering.media_tokens)
    return await _clamp(call, counters, bound, refusal, prompt)


def _output_alone_overflows(call: MeteredCall, counters: Sequence[Counter], card: PriceCard) -> bool:
    """Whether the output the request must be allowed (all of it, or a clamp's minimum) costs more than what is left."""
    blocking = [c for c in counters if c.block_pico is not None]
    clamps = [c.clamp_min_output for c in blocking if c.clamp_min_output is not None]
    tokens = output_bound(card, call.facts)
    if clamps:
        tokens = min(tokens, max(clamps))
    least = cost_to_pico(tight_bound_cost(card, PromptParts(), tokens))
    return least > min(call.metering.budget.room(c) for c in blocking)


async def _clamp(
    call: MeteredCall, counters: Sequence[Counter], bound: int, refusal: SpendLimitExceeded, prompt: PromptBound
) -> Admission:
    blocking = [c for c in counters if c.block_pico is not None]
    budget, facts = call.metering.budget, call.facts
    clamping = [c.clamp_min_output for c in blocking if c.clamp_min_output is not None]
    # A limit that refuses rather than clamps must have room for the request as it is.
    if not clamping or any(c.clamp_min_output is None and budget.room(c) < bound for c in blocking):
        raise refusal
    room = min(budget.room(c) for c in blocking)
    cap = clamped_cap(prompt, facts, room, max(clamping))
    if cap is None or (facts.output_cap is not None and cap >= facts.output_cap):
        raise refusal
    assert call.payload is not None and call.endpoint is not None
    rewritten = call.dialect.with_output_cap(call.endpoint, call.payload, cap)
    if rewritten is None:
        raise refusal
    clamped_facts = dataclasses.replace(facts, output_cap=cap)
    clamped, why = bound_of(prompt, clamped_facts, embeddings=False)
    admission = await budget.admit(counters, clamped, why)  # the budget may have moved meanwhile: then refused
    original = facts.output_cap if facts.output_cap is not None else prompt.card.max_output_tokens
    call.clamp(rewritten, clamped_facts, f"{original if original is not None else 'none'}->{cap}")
    logger.info("request %s: output cap clamped %s to fit its spend limit", call.request_id, call.clamped)
    return admission
