"""An invoice as text for a terminal: its head, a block per model line, the agent lines and the totals.

A model line shows each kind of token it counts, the unit price per million of that kind (when
the invoice has unit prices), and the line's amount; the exact cost in USD stays beside it.
"""

from __future__ import annotations

from decimal import Decimal

from proxy.billing.invoice import TOKEN_KINDS, Invoice, InvoiceLine
from proxy.money import money_text


def invoice_text(invoice: Invoice) -> str:
    """Several lines, ending in a newline."""
    out = [
        summary_line(invoice),
        f"  {invoice.entity_type} {invoice.entity_id}, {invoice.period}, {invoice.requests} requests",
    ]
    models = [line for line in invoice.lines if line.kind == "model"]
    agents = [line for line in invoice.lines if line.kind == "agent"]
    if invoice.corrects is not None:
        out.append(f"  corrects {invoice.corrects} (revision {invoice.revision})")
    if invoice.price_book is not None:
        out.append(f"  priced by customer {invoice.price_book}'s price book; each line's exact cost is the provider's")
    for line in models:
        out.extend(_model_block(line, invoice.currency))
    if agents:
        out.append("  by agent (the same usage, cut another way):")
        for line in agents:
            out.append(
                f"    {line.key or '(none)':<32} {line.requests:>9} req  {_amount(line.amount, invoice.currency)}"
                + _unpriced(line)
            )
    out.append(
        f"  subtotal {_amount(invoice.subtotal, invoice.currency)}, markup {_amount(invoice.markup, invoice.currency)}"
        f" ({money_text(invoice.markup_percent)}%), total {_amount(invoice.total, invoice.currency)}"
    )
    return "\n".join(out) + "\n"


def summary_line(invoice: Invoice) -> str:
    """``inv_2026-11_user_alice  pending  12.50 USD`` and the unpriced count, if any."""
    unpriced = f"  (+{invoice.unpriced_requests} unpriced requests)" if invoice.unpriced_requests else ""
    return f"{invoice.id}  {invoice.status:<7}  {invoice.total} {invoice.currency}{unpriced}"


def _model_block(line: InvoiceLine, currency: str) -> list[str]:
    head = (
        f"  model {line.key or '(none)':<32} {line.requests:>9} req  {_amount(line.amount, currency)}"
        f"  (exact cost ${money_text(line.cost_usd)}){_unpriced(line)}"
    )
    rows = [head]
    prices = line.unit_prices or {}
    for kind in TOKEN_KINDS:
        count = line.tokens.get(kind, 0)
        if not count:
            continue
        price = prices.get(kind.removesuffix("_tokens"))
        at = f"  at {money_text(price)} {currency}/M" if price is not None else ""
        rows.append(f"      {kind.removesuffix('_tokens'):<16} {count:>14,}{at}")
    if line.unit_prices is None and not line.unpriced_requests:
        rows.append("      (no unit prices: the model had no price card when invoiced)")
    return rows


def _amount(amount: Decimal, currency: str) -> str:
    return f"{amount} {currency}"


def _unpriced(line: InvoiceLine) -> str:
    return f"  (+{line.unpriced_requests} unpriced)" if line.unpriced_requests else ""
