"""The invoices in the database: generate a period's, list them, get one, change its status.

Generation
----------
``generate_invoices`` writes each invoice with its lines in one transaction, inserting with
ON CONFLICT DO NOTHING under UNIQUE(entity_type, entity_id, period): an invoice that exists
(from an earlier run, or from another instance running right now) is skipped, never changed.
Re-running a period therefore creates nothing twice and never touches a paid invoice, and
only ended periods can be generated. Usage with no user (or team) id is logged, not invoiced.
The figures of each invoice are made in ``amounts.py``, from usage summed here in SQL.

Statuses: pending → paid | failed | void; failed → pending | paid | void; paid → void (a
cancelled or refunded invoice); void is final. A status change never changes an amount.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from pricing import Catalog
from proxy.billing.amounts import UsageTotals, build_invoice
from proxy.billing.invoice import STATUSES, TOKEN_KINDS, Invoice, InvoiceLine
from proxy.billing.periods import parse_period
from proxy.billing.settings import BillingSettings
from proxy.recording.store import Store
from proxy.recording.tables import INVOICE_LINES_TABLE, INVOICES_TABLE, USAGE_TABLE

logger = logging.getLogger("tollgate.invoices")

_NEXT_STATUSES: Mapping[str, frozenset[str]] = {
    "pending": frozenset({"paid", "failed", "void"}),
    "failed": frozenset({"pending", "paid", "void"}),
    "paid": frozenset({"void"}),
    "void": frozenset(),
}


@dataclass(frozen=True, slots=True)
class Generation:
    """What one run of ``generate_invoices`` did: invoices created, and ids that already existed."""

    period: str
    created: tuple[Invoice, ...]
    skipped: tuple[str, ...]


class InvoiceNotFound(LookupError):
    pass


def generate_invoices(
    store: Store, settings: BillingSettings, period: str, now: datetime, *, prices: Catalog | None = None
) -> Generation:
    """Create the missing invoices of ``period`` for every entity with usage in it.

    ``prices`` (optional) fills the unit prices of model lines. Raises ``ValueError`` for a bad
    period or one that has not ended at ``now``.
    """
    start, end = parse_period(period)
    now = now.astimezone(UTC)
    if end > now:
        raise ValueError(f"period {period} has not ended yet; invoices are generated once it has")
    column = "user_id" if settings.entity == "user" else "team_id"
    models = usage_totals(store, column, "model_requested", start, end)
    agents = usage_totals(store, column, "agent", start, end)
    created: list[Invoice] = []
    skipped: list[str] = []
    for entity_id in sorted(models):
        invoice = build_invoice(settings, entity_id, period, models[entity_id], agents.get(entity_id, []), prices, now)
        if _insert(store, invoice):
            created.append(invoice)
        else:
            skipped.append(invoice.id)
    _warn_unattributed(store, column, start, end, period)
    # The scheduler runs this at every start: only a run that made something is worth an info line.
    logger.log(
        logging.INFO if created else logging.DEBUG,
        "invoices for %s: %d created, %d already there",
        period,
        len(created),
        len(skipped),
    )
    return Generation(period, tuple(created), tuple(skipped))


def correct_invoices(
    store: Store,
    settings: BillingSettings,
    period: str,
    now: datetime,
    *,
    prices: Catalog | None = None,
    entity_id: str | None = None,
) -> list[Invoice]:
    """Issue a corrected invoice for each invoice of ``period`` whose usage now adds up differently.

    An issued invoice is never changed: its correction is a new invoice (``<id>-r<n>``, revision n) that
    names the one it corrects, built from the rows as they are now (after ``tollgate reprice``, say).
    Returns the corrections made; an invoice whose figures still hold gets none.
    """
    start, end = parse_period(period)
    column = "user_id" if settings.entity == "user" else "team_id"
    latest: dict[str, Invoice] = {}
    for invoice in list_invoices(store, period=period, entity_id=entity_id):
        if invoice.entity_type != settings.entity:
            continue
        kept = latest.get(invoice.entity_id)
        if kept is None or invoice.revision > kept.revision:
            latest[invoice.entity_id] = invoice
    if not latest:
        return []
    models = usage_totals(store, column, "model_requested", start, end)
    agents = usage_totals(store, column, "agent", start, end)
    made = []
    for entity, issued in sorted(latest.items()):
        rebuilt = build_invoice(settings, entity, period, models.get(entity, []), agents.get(entity, []), prices, now)
        if _figures(rebuilt) == _figures(issued):
            continue
        revision = issued.revision + 1
        base_id = issued.id.rsplit("-r", 1)[0] if issued.revision else issued.id
        correction = dataclasses.replace(rebuilt, id=f"{base_id}-r{revision}", revision=revision, corrects=issued.id)
        if _insert(store, correction):
            made.append(correction)
    logger.info("invoices for %s: %d corrected", period, len(made))
    return made


def _figures(invoice: Invoice) -> dict[str, Any]:
    """What an invoice says, without its id, status, times and revision: two that agree here bill alike."""
    data = invoice.as_json()
    for name in ("id", "status", "created_at", "updated_at", "revision", "corrects"):
        data.pop(name)
    data["lines"] = sorted(data["lines"], key=lambda line: (line["kind"], line["key"]))
    for line in data["lines"]:
        line.pop("unit_prices_per_million")  # read from the catalog of the day: not a figure billed
    return data


def list_invoices(
    store: Store, *, period: str | None = None, status: str | None = None, entity_id: str | None = None
) -> list[Invoice]:
    """Invoices with their lines, newest period first, then by entity."""
    i = INVOICES_TABLE.c
    filters = ((i.period, period), (i.status, status), (i.entity_id, entity_id))
    return _load(store, [column == value for column, value in filters if value is not None])


def get_invoice(store: Store, invoice_id: str) -> Invoice | None:
    """The invoice ``invoice_id`` with its lines; None when there is none."""
    found = _load(store, [INVOICES_TABLE.c.id == invoice_id])
    return found[0] if found else None


def set_status(store: Store, invoice_id: str, status: str, now: datetime) -> Invoice:
    """Move an invoice to ``status`` (see the module docstring for the allowed moves); amounts never change.

    Raises ``InvoiceNotFound``, or ``ValueError`` for an unknown status or a move that is not allowed.
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    i = INVOICES_TABLE.c
    with store.write_engine.begin() as conn:
        query = sa.select(i.status).where(i.id == invoice_id).with_for_update()
        current = conn.execute(query).scalar_one_or_none()
        if current is None:
            raise InvoiceNotFound(invoice_id)
        if status != current:
            if status not in _NEXT_STATUSES[current]:
                allowed = ", ".join(sorted(_NEXT_STATUSES[current])) or "nothing: void is final"
                raise ValueError(f"a {current} invoice cannot become {status}; it can become {allowed}")
            update = sa.update(INVOICES_TABLE).where(i.id == invoice_id).values(status=status, updated_at=now)
            conn.execute(update)
    invoice = get_invoice(store, invoice_id)
    if invoice is None:
        raise InvoiceNotFound(invoice_id)
    return invoice


def usage_totals(store: Store, entity: str, key: str, start: datetime, end: datetime) -> dict[str, list[UsageTotals]]:
    """Usage per entity id and ``key`` column value over ``[start, end)``, summed in SQL (exact integers)."""
    t = USAGE_TABLE.c
    group = sa.func.coalesce(t[key], "")
    # The row's flag, as in reports and rollups: a failed request or a model listing has no cost and no usage,
    # which is not the same as usage without a price.
    unpriced = t.unpriced.is_(True)
    query = (
        sa.select(
            t[entity],
            group,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.case((unpriced, 1), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(t.cost_pico), 0),
            *(sa.func.coalesce(sa.func.sum(t[kind]), 0) for kind in TOKEN_KINDS),
        )
        .where(t[entity].is_not(None), t.started_at >= start, t.started_at < end)
        .group_by(t[entity], group)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    usage: dict[str, list[UsageTotals]] = {}
    for row in rows:
        tokens = {kind: int(value) for kind, value in zip(TOKEN_KINDS, row[5:], strict=True)}
        usage.setdefault(str(row[0]), []).append(
            UsageTotals(str(row[1]), int(row[2]), int(row[3]), tokens, int(row[4]))
        )
    return usage


def _warn_unattributed(store: Store, entity: str, start: datetime, end: datetime, period: str) -> None:
    t = USAGE_TABLE.c
    query = sa.select(sa.func.count()).where(t[entity].is_(None), t.started_at >= start, t.started_at < end)
    with store.engine.connect() as conn:
        count = int(conn.execute(query).scalar_one())
    if count:
        logger.warning("%d requests in %s have no %s and are on no invoice", count, period, entity)


def _insert(store: Store, invoice: Invoice) -> bool:
    """Write ``invoice`` and its lines in one transaction; False (and nothing written) if it exists."""
    insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    head = {name: value for name, value in invoice.as_json().items() if name != "lines"}
    head.update(created_at=invoice.created_at, updated_at=invoice.updated_at)
    statement = insert(INVOICES_TABLE).values(head).on_conflict_do_nothing().returning(INVOICES_TABLE.c.id)
    with store.write_engine.begin() as conn:
        # Without a conflict target, any unique violation (the id or the entity and period) skips the row;
        # PostgreSQL makes a concurrent insert of the same invoice wait for the first, then skip.
        if conn.execute(statement).first() is None:
            return False
        conn.execute(sa.insert(INVOICE_LINES_TABLE), [_line_row(invoice.id, line) for line in invoice.lines])
    return True


def _line_row(invoice_id: str, line: InvoiceLine) -> dict[str, Any]:
    row = line.as_json()
    prices = row.pop("unit_prices_per_million")
    return {**row, "invoice_id": invoice_id, "unit_prices": None if prices is None else orjson.dumps(prices).decode()}


def _load(store: Store, conditions: Sequence[sa.ColumnElement[bool]]) -> list[Invoice]:
    i, lc = INVOICES_TABLE.c, INVOICE_LINES_TABLE.c
    heads_query = sa.select(INVOICES_TABLE).where(*conditions).order_by(i.period.desc(), i.entity_type, i.entity_id)
    lines_query = sa.select(INVOICE_LINES_TABLE).where(lc.invoice_id.in_(sa.select(i.id).where(*conditions)))
    with store.engine.connect() as conn:
        heads = conn.execute(heads_query).mappings().all()
        line_rows = conn.execute(lines_query).mappings().all()
    lines: dict[str, list[InvoiceLine]] = {}
    for row in line_rows:
        lines.setdefault(row["invoice_id"], []).append(_line_from_row(row))
    invoices = []
    for head in heads:
        own = lines.get(head["id"], [])
        # Model lines first, as built: largest cost first.
        own.sort(key=lambda line: (line.kind != "model", -line.cost_usd, line.key))
        invoices.append(
            Invoice(
                id=head["id"],
                entity_type=head["entity_type"],
                entity_id=head["entity_id"],
                period=head["period"],
                currency=head["currency"],
                status=head["status"],
                cost_usd=Decimal(head["cost_usd"]),
                exchange_rate=Decimal(head["exchange_rate"]),
                subtotal=Decimal(head["subtotal"]),
                markup_percent=Decimal(head["markup_percent"]),
                markup=Decimal(head["markup"]),
                total=Decimal(head["total"]),
                requests=int(head["requests"]),
                unpriced_requests=int(head["unpriced_requests"]),
                created_at=_utc(head["created_at"]),
                updated_at=_utc(head["updated_at"]),
                lines=tuple(own),
                price_book=head["price_book"],
                revision=int(head["revision"]),
                corrects=head["corrects"],
            )
        )
    return invoices


def _line_from_row(row: sa.RowMapping) -> InvoiceLine:
    prices = None if row["unit_prices"] is None else orjson.loads(row["unit_prices"])
    return InvoiceLine(
        kind=row["kind"],
        key=row["key"],
        requests=int(row["requests"]),
        unpriced_requests=int(row["unpriced_requests"]),
        tokens={kind: int(row[kind]) for kind in TOKEN_KINDS},
        cost_usd=Decimal(row["cost_usd"]),
        amount=Decimal(row["amount"]),
        unit_prices=None if prices is None else {kind: Decimal(value) for kind, value in prices.items()},
    )


def _utc(value: datetime) -> datetime:
    # SQLite has no time zones: it returns the UTC time it was given, without one.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
