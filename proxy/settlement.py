"""A finished call, priced, settled on its limits, and queued as one usage row.

The last step of ``proxy.core``'s ``MeteredCall``, for an answer, a stream or a refusal alike:

    price      the usage at the served model's card (or the requested one's); unknown prices flagged
    settle     the call's reservation on the limits, replaced by what it cost (``BudgetKeeper.settle``)
    record     one ``UsageRecord`` to the recorder, with the metrics and the access log beside it

A call is recorded once: ``MeteredCall.recorded`` makes a second ``record`` a no-op (a stream that
ends and then sees its client go, for one).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING

import orjson

from pricing import PriceCard, TokenCounts, cost_to_pico, decimal_text, pico_to_usd, price_tokens, token_columns
from proxy.access_log import log_request
from proxy.recording.deferred import Deferred, Finished, Queued
from proxy.recording.records import UsageRecord
from proxy.usage import CLAMPED, ESTIMATED, MISSING, NO_USAGE, PENDING, REPORTED, Usage, clamp_usage

if TYPE_CHECKING:
    from proxy.core import MeteredCall

logger = logging.getLogger("tollgate.core")

_NO_TOKENS = TokenCounts()


def price(call: MeteredCall, usage: Usage | None) -> tuple[int | None, bool]:
    """(cost in picodollars, unpriced) of the request's usage; (None, False) when it has none."""
    card, cost, unpriced = _cost(call, usage, call.facts.model)
    admission = call.admission
    if card is not None and cost is not None and admission.leased and cost > admission.bound:
        _overran(call, card, cost)
    return cost, unpriced


def _cost(call: MeteredCall, usage: Usage | None, requested: str | None) -> tuple[PriceCard | None, int | None, bool]:
    """(the card that priced it, cost in picodollars, unpriced) of ``usage``; no cost when there is none."""
    metering = call.metering
    model_served = call.priced_as or (usage.model if usage is not None else None) or requested
    if usage is None or model_served is None:
        return None, None, False
    card = call.price_card(model_served)
    if card is None and requested is not None and requested != model_served:
        card = call.price_card(requested)
    if card is None:
        if model_served not in metering.unpriced_warned:
            metering.unpriced_warned.add(model_served)
            logger.warning("no price for model %r: its usage is recorded as unpriced", model_served)
        return None, None, True
    return card, cost_to_pico(price_tokens(card, usage.tokens, usage.service_tier).total), False


def _overran(call: MeteredCall, served: PriceCard, cost: int) -> None:
    """A request cost more than it was admitted with: a hole in the hard limit, said loudly and closed."""
    metering, bound = call.metering, call.admission.bound
    metering.metrics.observe_bound_overrun(model=served.model)
    logger.error(
        "BOUND EXCEEDED: request %s (model %r, answered as %r) cost $%s, more than its bound of $%s; "
        "spend may pass a blocking limit by the difference",
        call.request_id,
        call.facts.model,
        served.model,
        decimal_text(pico_to_usd(cost)),
        decimal_text(pico_to_usd(bound)),
    )
    model, provider = call.facts.model, call.provider
    if provider is not None and model is not None and call.price_card(model) != served:
        # The provider answered with a dearer model than asked for: from now on, bound by that one too.
        key = (provider.name, model)
        known = metering.substitutes.get(key, ())
        if served not in known:
            metering.substitutes[key] = (*known, served)


def finished(call: MeteredCall, job: str, usage: Usage | None) -> Finished:
    """A finished job's usage, priced, to complete the row of the request that queued it."""
    usage = usage if usage is not None else Usage(tokens=_NO_TOKENS)
    card = call.price_card(usage.model) if usage.model is not None else None
    usage, _ = clamp_usage(usage, card)
    _, cost, unpriced = _cost(call, usage, None)
    if usage.model is None and usage.tokens == _NO_TOKENS:
        cost, unpriced = 0, False  # finished before it ran: nothing to pay
    return Finished(job, usage.tokens, usage.model, usage.service_tier, cost, unpriced)


def record(
    call: MeteredCall,
    status: int,
    usage: Usage | None,
    error: str | None,
    *,
    estimated: bool = False,
    deferred: Deferred | None = None,
) -> bool:
    """Price, settle and queue the request's row, once; False if it is not on disk yet (see ``write_through``)."""
    if call.recorded:
        return True
    call.recorded = True
    metering = call.metering
    model_served = (usage.model if usage is not None else None) or call.facts.model
    clamped = False
    if usage is not None:
        usage, clamped = clamp_usage(usage, call.price_card(model_served) if model_served else None)
        if clamped:
            logger.error(
                "IMPOSSIBLE USAGE: request %s (model %r) reported more tokens than the model can use; "
                "counts clamped to %d and the row flagged %r",
                call.request_id,
                model_served,
                max(dataclasses.astuple(usage.tokens)),
                CLAMPED,
            )
    if call.cost is None:
        call.cost = price(call, usage)
    cost_pico, unpriced = call.cost
    # A background job holds its bound on the limits until its usage arrives (see proxy.recording.deferred).
    held = call.admission.bound if isinstance(deferred, Queued) else (cost_pico or 0)
    charges = metering.budget.settle(call.admission, held) if call.admission.counters else ()
    latency = time.perf_counter() - call.started
    if usage is not None:
        source = CLAMPED if clamped else ESTIMATED if estimated else REPORTED
    elif isinstance(deferred, Queued):
        source = PENDING
    else:
        source = MISSING if call.endpoint is not None and status < 400 else NO_USAGE
    provider = call.provider.name if call.provider is not None else None
    tokens = usage.tokens if usage is not None else _NO_TOKENS
    metering.metrics.observe_request(
        endpoint=call.path,
        provider=provider,
        model=model_served,
        status=status,
        user=call.attribution.user,
        latency_s=latency,
        ttfb_s=call.ttfb,
        tokens=usage.tokens if usage is not None else None,
        cost_pico=cost_pico,
        usage_source=source,
    )
    attribution = call.attribution
    record = UsageRecord(
        request_id=call.request_id,
        started_at=call.started_at,
        ended_at=metering.clock(),
        method=call.method,
        endpoint=call.path,
        provider=provider,
        model_requested=call.facts.model,
        model_served=model_served if usage is not None else None,
        stream=call.facts.stream,
        status=status,
        user_id=attribution.user,
        team_id=attribution.team,
        thread_id=attribution.thread,
        agent=attribution.agent,
        key_name=attribution.key,
        tags=orjson.dumps(dict(attribution.tags)).decode() if attribution.tags else None,
        **token_columns(tokens),
        service_tier=usage.service_tier if usage is not None else None,
        cost_pico=cost_pico,
        unpriced=unpriced,
        usage_source=source,
        latency_ms=latency * 1e3,
        ttfb_ms=call.ttfb * 1e3 if call.ttfb is not None else None,
        error_type=error,
        provider_kind=call.provider.kind if call.provider is not None else None,
        provider_usage=_usage_json(usage),
        front_door=call.front_door,
    )
    if metering.access_log or status >= 400:
        log_request(record, metering.access_log)
    return metering.recorder.submit(record, charges, deferred)


def _usage_json(usage: Usage | None) -> str | None:
    if usage is None or usage.provider_usage is None:
        return None
    try:
        return orjson.dumps(usage.provider_usage).decode()
    except TypeError:  # not JSON (numbers beyond 64 bits): kept out rather than failing the row
        return None
