"""An invoice's figures from its entity's usage totals: pure arithmetic, no I/O.

Money, and where it is rounded
------------------------------
Costs are summed in SQL as integer picodollars (exact on both engines) and become exact
``Decimal`` USD, times ``exchange_rate`` (units of ``currency`` per USD; 1 for USD). Then::

    line amount = that exact cost of one model, rounded once to ``decimals`` with ``rounding``
    subtotal    = the sum of the rounded model-line amounts
    markup      = subtotal × markup_percent / 100, rounded once
    total       = subtotal + markup

A customer with a price book (``[billing.customers."<id>"]``, see ``proxy.billing.customers``) pays its
own price instead: each model line's amount is the customer's exact price of it (times
``exchange_rate``), rounded once, with the provider's exact cost kept beside it in ``cost_usd``; its
book holds its markup, so the invoice-level markup is 0.

so an invoice always adds up as printed. Agent lines cut the same usage another way and are
each rounded on their own, so their sum may differ from the subtotal by rounding; the exact
cost is kept on every line and on the invoice (``cost_usd``). Unpriced requests cost nothing
here and are counted in ``unpriced_requests`` (rows flagged ``unpriced``: usage with no price,
never a failed request or a model listing, which have no usage): never silently zero. Unit prices on model
lines are the price card's base rates at generation time, for reading only: amounts come
from the recorded costs, which also reflect size and service tiers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded

from pricing import Catalog, pico_to_usd
from proxy.billing.customers import CustomerBook
from proxy.billing.invoice import Invoice, InvoiceLine, invoice_id_for
from proxy.billing.settings import BillingSettings

# litellm's rate names (USD per token) to the token kinds a model line shows prices for.
_RATE_KINDS = {
    "input_cost_per_token": "input",
    "cache_read_input_token_cost": "cached_input",
    "cache_creation_input_token_cost": "cache_write",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
    "cache_creation_input_token_cost_above_12hr": "cache_write_12h",
    "output_cost_per_token": "output",
    "output_cost_per_reasoning_token": "reasoning",
    "input_cost_per_audio_token": "audio_input",
    "output_cost_per_audio_token": "audio_output",
}
# Products and sums that would lose a digit raise instead of rounding; rounding is explicit (quantize).
_EXACT = Context(prec=100, traps=[InvalidOperation, Inexact, Rounded])


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """One entity's usage of one model or agent (``key``) in a period, summed in SQL (exact integers)."""

    key: str
    requests: int
    unpriced_requests: int
    tokens: dict[str, int]
    cost_pico: int


def build_invoice(
    settings: BillingSettings,
    entity_id: str,
    period: str,
    models: Sequence[UsageTotals],
    agents: Sequence[UsageTotals],
    prices: Catalog | None,
    now: datetime,
) -> Invoice:
    """The invoice of ``entity_id`` for ``period`` from its model and agent totals, as ``pending``.

    ``prices`` (optional) fills the unit prices of model lines.
    """
    book = settings.customers.get(entity_id)
    model_lines = _lines(settings, "model", models, prices, book)
    subtotal = Decimal(0)
    for line in model_lines:
        subtotal = _EXACT.add(subtotal, line.amount)
    markup_percent = settings.markup_percent if book is None else Decimal(0)
    markup = settings.round(_EXACT.divide(_EXACT.multiply(subtotal, markup_percent), 100))
    return Invoice(
        id=invoice_id_for(settings.entity, entity_id, period),
        entity_type=settings.entity,
        entity_id=entity_id,
        period=period,
        currency=settings.currency,
        status="pending",
        cost_usd=pico_to_usd(sum(u.cost_pico for u in models)),
        exchange_rate=settings.exchange_rate,
        subtotal=subtotal,
        markup_percent=markup_percent,
        markup=markup,
        total=_EXACT.add(subtotal, markup),
        requests=sum(u.requests for u in models),
        unpriced_requests=sum(u.unpriced_requests for u in models),
        created_at=now,
        updated_at=now,
        lines=(*model_lines, *_lines(settings, "agent", agents, None, book)),
        price_book=entity_id if book is not None else None,
    )


def _lines(
    settings: BillingSettings,
    kind: str,
    usage: Sequence[UsageTotals],
    prices: Catalog | None,
    book: CustomerBook | None,
) -> list[InvoiceLine]:
    lines = [
        InvoiceLine(
            kind=kind,
            key=u.key,
            requests=u.requests,
            unpriced_requests=u.unpriced_requests,
            tokens=u.tokens,
            cost_usd=pico_to_usd(u.cost_pico),
            amount=settings.round(_EXACT.multiply(_price(u, kind, prices, book), settings.exchange_rate)),
            unit_prices=_unit_prices(prices, u.key, settings.exchange_rate) if kind == "model" else None,
        )
        for u in usage
    ]
    return sorted(lines, key=lambda line: (-line.cost_usd, line.key))


def _price(usage: UsageTotals, kind: str, prices: Catalog | None, book: CustomerBook | None) -> Decimal:
    """What the line is billed at, in USD: its provider cost, or the customer's price of it."""
    cost = pico_to_usd(usage.cost_pico)
    if book is None:
        return cost
    # An agent line cuts the same usage by agent, across models: the customer's markup and discount apply.
    model = usage.key if kind == "model" else ""
    card = prices.lookup(model) if prices is not None and model else None
    return book.price(model, cost, usage.tokens, card)


def _unit_prices(prices: Catalog | None, model: str, exchange_rate: Decimal) -> dict[str, Decimal] | None:
    card = prices.lookup(model) if prices is not None and model else None
    if card is None:
        return None
    return {
        kind: _plain(_EXACT.multiply(_EXACT.multiply(card.rates[rate], 1_000_000), exchange_rate))
        for rate, kind in _RATE_KINDS.items()
        if rate in card.rates
    }


def _plain(value: Decimal) -> Decimal:
    """``value`` without trailing zeros or an exponent, so it prints as 2.5, not 2.5000000 or 1E+1."""
    return Decimal(format(value.normalize(_EXACT), "f"))
