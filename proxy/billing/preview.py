"""What a month's invoices would be now, Stripe's "upcoming invoice": built like the real ones, never stored.

A preview answers from the raw usage rows of the month up to now, with the billing settings and
prices in force, through the same arithmetic as generation (``amounts.py``). Its invoices say
``status = "preview"`` and nothing is written: generating the month once it has ended still
creates the real invoices, which may differ (usage after now, a changed setting or price).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pricing import Catalog
from proxy.billing.amounts import build_invoice
from proxy.billing.invoice import Invoice
from proxy.billing.periods import parse_period
from proxy.billing.queries import usage_totals
from proxy.billing.settings import BillingSettings
from proxy.recording.store import Store

RUNNING = "running"
PREVIEW_STATUS = "preview"
NOT_STORED = "A preview: nothing is stored. These are the invoices the period would get if it ended now."


@dataclass(frozen=True, slots=True)
class Preview:
    period: str
    as_of: datetime
    invoices: tuple[Invoice, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "as_of": self.as_of.isoformat().replace("+00:00", "Z"),
            "stored": False,
            "note": NOT_STORED,
            "invoices": [invoice.as_json() for invoice in self.invoices],
        }


def running_period(now: datetime) -> str:
    """The UTC calendar month ``now`` is in, as ``YYYY-MM``."""
    return f"{now.astimezone(UTC):%Y-%m}"


def preview_invoices(
    store: Store,
    settings: BillingSettings,
    now: datetime,
    *,
    period: str = RUNNING,
    entity_id: str | None = None,
    prices: Catalog | None = None,
) -> Preview:
    """The invoices of ``period`` (``running``: this month) from its usage up to ``now``; nothing is written.

    Raises ``ValueError`` for a period that is neither ``running`` nor ``YYYY-MM``, or one that starts after now.
    """
    now = now.astimezone(UTC)
    name = running_period(now) if period == RUNNING else period
    start, end = parse_period(name)
    if start > now:
        raise ValueError(f"period {name} has not started yet: there is nothing to preview")
    column = "user_id" if settings.entity == "user" else "team_id"
    until = min(end, now)
    models = usage_totals(store, column, "model_requested", start, until)
    agents = usage_totals(store, column, "agent", start, until)
    invoices = tuple(
        replace(
            build_invoice(settings, entity, name, models[entity], agents.get(entity, []), prices, now),
            status=PREVIEW_STATUS,
        )
        for entity in sorted(models)
        if entity_id is None or entity == entity_id
    )
    return Preview(name, now, invoices)
