"""A request the byte bound would refuse gets a second look before it is refused.

``MeteredCall.reserve`` calls ``tighter_token_hold`` when a tokens-per-minute limit has no room
for the byte bound's tokens: the prompt is counted, and its tokens held instead of its bytes.
It calls ``second_look`` when reserving the byte bound on a spend limit failed:

1. count the prompt (``proxy.limits.tighten.count_prompt``) and reserve the tighter bound;
2. if that does not fit either, and every limit that cannot take the request is one with
   ``on_exceed = "clamp"``, lower the request's output cap to what the budget left covers
   (``clamped_cap``), rewrite its body through the dialect, and reserve that bound;
3. else the refusal stands, naming the tightest bound it tried.

Only a request that would otherwise be refused pays for any of this. A request whose
answer may come from several priced models (fallbacks, ``bound_models``, a substitution
seen before) keeps its bound over all of them, and so does one whose cost has parts the
counted bound leaves out (hosted-tool fees, media, a later price version that may price
its row): it is not looked at again. A prompt is counted at most once per request: the token
hold and the spend bound share the count.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pricing import PriceCard, PromptParts, cost_to_pico, tight_bound_cost
from proxy.errors import SpendLimitExceeded, TokenRateExceeded
from proxy.limits.bounds import output_bound
from proxy.limits.budget import Admission
from proxy.limits.rate_keeper import RateHold
from proxy.limits.rate_tokens import token_bound
from proxy.limits.rates import RateCounter
from proxy.limits.rules import Counter
from proxy.limits.tighten import Count, PromptBound, bound_of, byte_prompt, clamped_cap, count_prompt
from proxy.limits.tool_bounds import tool_fee_bound

if TYPE_CHECKING:
    from proxy.core import MeteredCall

logger = logging.getLogger("tollgate.limits")

# How long a request refused only for the bounds requests in flight hold may wait for them to settle.
SETTLE_WAIT_SECONDS = 2.0


async def second_look(
    call: MeteredCall,
    counters: Sequence[Counter],
    bound: int,
    why: str,
    refusal: SpendLimitExceeded | None,
    count: Count | None,
) -> Admission:
    """An admission with a tighter bound, or with a clamped output cap; else a refusal is raised.

    ``refusal`` is the byte bound's, when it was tried; None for a request near a limit, whose byte bound
    is tried only if no tighter one can be had.
    """
    budget, metering, facts, payload = call.metering.budget, call.metering, call.facts, call.payload
    endpoint, provider = call.endpoint, call.provider
    card = call.price_card(call.priced_as or facts.model) if facts.model is not None else None
    if (
        payload is None
        or endpoint is None
        or provider is None
        or card is None
        or facts.fallback_models
        or provider.bound_models
        or metering.substitutes.get((provider.name, card.model))
        or facts.media is not None
        # Hosted-tool fees, and a later price version that may price the row, sit outside the counted bound.
        or tool_fee_bound(card, facts, metering.tool_prices, call.price_card, provider.kind)[0]
        or len(call.prices.may_price(call.started_at)) > 1
    ):
        if refusal is not None:
            raise refusal
        return await budget.admit(counters, bound, why)
    if not endpoint.embeddings and _output_alone_overflows(call, counters, card):
        # Past the limit already: no round trip to count a prompt that cannot change the answer.
        if refusal is not None:
            raise refusal
        return await budget.admit(counters, bound, why)
    prompt = await counted_prompt(call, card, count)
    if prompt is not None:
        tight, tight_why = bound_of(prompt, facts, embeddings=endpoint.embeddings)
        if tight < bound:
            bound, why = tight, tight_why
            refusal = None  # the tighter bound is tried now
    if refusal is None:
        try:
            return await budget.admit(counters, bound, why)
        except SpendLimitExceeded as refused:
            refusal = refused
    prompt = prompt or byte_prompt(card, facts, len(call.body), metering.media_tokens)
    if endpoint.embeddings:
        return await _settle_then_admit(call, counters, bound, why, refusal)
    try:
        return await _clamp(call, counters, bound, refusal, prompt)
    except SpendLimitExceeded as refused:
        if all(c.clamp_min_output is not None for c in counters if c.block_pico is not None):
            return await _clamp_once_room_is_back(call, counters, bound, refused, prompt)
        return await _settle_then_admit(call, counters, bound, why, refused)


async def tighter_token_hold(
    call: MeteredCall, counters: Sequence[RateCounter], tokens: int, refusal: TokenRateExceeded, count: Count | None
) -> RateHold:
    """A hold of the request's counted tokens on its rate limits; else the byte bound's ``refusal`` is raised."""
    metering, facts = call.metering, call.facts
    card = call.price_card(call.priced_as or facts.model) if facts.model is not None else None
    if card is None or facts.media is not None:
        raise refusal
    prompt = await counted_prompt(call, card, count)
    if prompt is None:
        raise refusal
    tight = token_bound(card, len(call.body), facts, media_tokens=metering.media_tokens, counted=prompt.parts.total)
    if tight >= tokens:
        raise refusal
    assert metering.rate_keeper is not None
    return await metering.rate_keeper.admit(counters, tight, call.dialect.kind)


async def counted_prompt(call: MeteredCall, card: PriceCard, count: Count | None) -> PromptBound | None:
    """The request's prompt counted (see ``proxy.limits.tighten.count_prompt``), once per request."""
    if not call.prompt_counted:
        call.prompt_counted = True
        if call.payload is not None and call.provider is not None:
            call.prompt_bound = await count_prompt(
                call.provider.kind,
                card,
                call.facts,
                call.payload,
                len(call.body),
                call.raw_path,
                call.metering.media_tokens,
                count,
            )
    return call.prompt_bound


async def _settle_then_admit(
    call: MeteredCall, counters: Sequence[Counter], bound: int, why: str, refusal: SpendLimitExceeded
) -> Admission:
    """Refused only for what requests in flight hold (a burst): wait for them to settle, then try again."""
    budget = call.metering.budget
    deadline = time.monotonic() + SETTLE_WAIT_SECONDS
    while budget.held_back(counters, bound) and time.monotonic() < deadline:
        await asyncio.sleep(budget.config.sync_interval)
        try:
            return await budget.admit(counters, bound, why)
        except SpendLimitExceeded as refused:
            refusal = refused
    raise refusal


async def _clamp_once_room_is_back(
    call: MeteredCall, counters: Sequence[Counter], bound: int, refusal: SpendLimitExceeded, prompt: PromptBound
) -> Admission:
    """A clamp that did not fit: try it again as budget comes back, for up to ``SETTLE_WAIT_SECONDS``.

    In a burst, the budget a clamp needs is often held for a moment: by requests in flight, whose
    bounds are settled to their costs, or by other workers' leases, which they give back once idle
    (``BudgetKeeper.sync``). Each try reads the counters again (``BudgetKeeper.look_again``), and it
    waits only while what the limit has spent leaves room for the request at its smallest output.
    """
    budget, facts = call.metering.budget, call.facts
    least_output = max(c.clamp_min_output or 0 for c in counters if c.block_pico is not None)
    least, _ = bound_of(prompt, dataclasses.replace(facts, output_cap=least_output), embeddings=False)
    deadline = time.monotonic() + SETTLE_WAIT_SECONDS
    while budget.held_back(counters, least) and time.monotonic() < deadline:
        await asyncio.sleep(budget.config.sync_interval)
        await budget.look_again(counters)
        try:
            return await _clamp(call, counters, bound, refusal, prompt)
        except SpendLimitExceeded as refused:
            refusal = refused
    raise refusal


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
