"""Invoices: one per billing entity (a user or a team) and UTC calendar month.

Money, and where it is rounded
------------------------------
Costs are summed in SQL as integer picodollars (exact on both engines) and become exact
``Decimal`` USD, times ``exchange_rate`` (units of ``currency`` per USD; 1 for USD). Then::

    line amount = that exact cost of one model, rounded once to ``decimals`` with ``rounding``
    subtotal    = the sum of the rounded model-line amounts
    markup      = subtotal × markup_percent / 100, rounded once
    total       = subtotal + markup

so an invoice always adds up as printed. Agent lines cut the same usage another way and are
each rounded on their own, so their sum may differ from the subtotal by rounding; the exact
cost is kept on every line and on the invoice (``cost_usd``). Unpriced requests cost nothing
here and are counted in ``unpriced_requests`` (rows flagged ``unpriced``: usage with no price,
never a failed request or a model listing, which have no usage): never silently zero. Unit prices on model
lines are the price card's base rates at generation time, for reading only: amounts come
from the recorded costs, which also reflect size and service tiers.

Generation
----------
``generate_invoices`` writes each invoice with its lines in one transaction, inserting with
ON CONFLICT DO NOTHING under UNIQUE(entity_type, entity_id, period): an invoice that exists
(from an earlier run, or from another instance running right now) is skipped, never changed.
Re-running a period therefore creates nothing twice and never touches a paid invoice, and
only ended periods can be generated. Usage with no user (or team) id is logged, not invoiced.

Statuses: pending → paid | failed | void; failed → pending | paid | void; paid → void (a
cancelled or refunded invoice); void is final. A status change never changes an amount.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from pricing import Catalog, decimal_text, pico_to_usd
from proxy.billing.settings import BillingSettings, CurrentBilling
from proxy.clock import Clock, system_clock
from proxy.recording.export import spreadsheet_cell
from proxy.recording.store import INVOICE_LINES_TABLE, INVOICES_TABLE, USAGE_TABLE, Store

logger = logging.getLogger("tollgate.invoices")

STATUSES = ("pending", "paid", "failed", "void")
EXPORT_FORMATS = ("csv", "json")
TOKEN_KINDS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "cache_write_12h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
)
_NEXT_STATUSES: Mapping[str, frozenset[str]] = {
    "pending": frozenset({"paid", "failed", "void"}),
    "failed": frozenset({"pending", "paid", "void"}),
    "paid": frozenset({"void"}),
    "void": frozenset(),
}
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
_MONEY = ("cost_usd", "exchange_rate", "subtotal", "markup_percent", "markup", "total")
_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
_PLAIN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Products and sums that would lose a digit raise instead of rounding; rounding is explicit (quantize).
_EXACT = Context(prec=100, traps=[InvalidOperation, Inexact, Rounded])


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """Usage of one model (``kind="model"``) or one agent (``kind="agent"``); ``key`` is "" when unknown."""

    kind: str
    key: str
    requests: int
    unpriced_requests: int
    tokens: Mapping[str, int]  # by TOKEN_KINDS
    cost_usd: Decimal  # exact
    amount: Decimal  # in the invoice currency, rounded
    unit_prices: Mapping[str, Decimal] | None = None  # per million tokens, in the invoice currency

    def as_json(self) -> dict[str, Any]:
        """JSON-ready, money as decimal strings."""
        prices = None if self.unit_prices is None else {k: decimal_text(v) for k, v in self.unit_prices.items()}
        return {
            "kind": self.kind,
            "key": self.key,
            "requests": self.requests,
            "unpriced_requests": self.unpriced_requests,
            **{kind: self.tokens.get(kind, 0) for kind in TOKEN_KINDS},
            "cost_usd": decimal_text(self.cost_usd),
            "amount": decimal_text(self.amount),
            "unit_prices_per_million": prices,
        }


@dataclass(frozen=True, slots=True)
class Invoice:
    id: str
    entity_type: str
    entity_id: str
    period: str
    currency: str
    status: str
    cost_usd: Decimal  # exact usage cost, before exchange, rounding and markup
    exchange_rate: Decimal
    subtotal: Decimal
    markup_percent: Decimal
    markup: Decimal
    total: Decimal
    requests: int
    unpriced_requests: int
    created_at: datetime
    updated_at: datetime
    lines: tuple[InvoiceLine, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """JSON-ready, money as decimal strings, times as ISO 8601 UTC."""
        return {
            "id": self.id,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "period": self.period,
            "currency": self.currency,
            "status": self.status,
            **{name: decimal_text(getattr(self, name)) for name in _MONEY},
            "requests": self.requests,
            "unpriced_requests": self.unpriced_requests,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "lines": [line.as_json() for line in self.lines],
        }


@dataclass(frozen=True, slots=True)
class Generation:
    """What one run of ``generate_invoices`` did: invoices created, and ids that already existed."""

    period: str
    created: tuple[Invoice, ...]
    skipped: tuple[str, ...]


class InvoiceNotFound(LookupError):
    pass


def parse_period(period: str) -> tuple[datetime, datetime]:
    """The UTC bounds ``[start, end)`` of a ``YYYY-MM`` period; ``ValueError`` for anything else."""
    match = _PERIOD.fullmatch(period)
    if match is None:
        raise ValueError(f"period must be YYYY-MM, e.g. 2026-11, not {period!r}")
    year, month = int(match[1]), int(match[2])
    return datetime(year, month, 1, tzinfo=UTC), datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def due_period(now: datetime, settings: BillingSettings) -> str | None:
    """The period the scheduler should generate at ``now``: last month, once this month's generate time passed."""
    now = now.astimezone(UTC)
    due = now.replace(day=settings.generate_day, hour=settings.generate_hour_utc, minute=0, second=0, microsecond=0)
    return None if now < due else previous_period(now)


def previous_period(now: datetime) -> str:
    """The calendar month before ``now``'s (UTC), as ``YYYY-MM``."""
    return f"{now.astimezone(UTC).replace(day=1) - timedelta(days=1):%Y-%m}"


def invoice_id_for(entity_type: str, entity_id: str, period: str) -> str:
    """A stable id, so every instance names an invoice alike: ``inv_2026-11_user_alice``.

    Ids that are long or hold characters unsafe in a URL path are replaced by ``~`` and a hash.
    """
    name = entity_id if _PLAIN_ID.fullmatch(entity_id) else "~" + hashlib.sha256(entity_id.encode()).hexdigest()[:24]
    return f"inv_{period}_{entity_type}_{name}"


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
    models = _usage_by(store, column, "model_requested", start, end)
    agents = _usage_by(store, column, "agent", start, end)
    created: list[Invoice] = []
    skipped: list[str] = []
    for entity_id in sorted(models):
        invoice = _build(settings, entity_id, period, models[entity_id], agents.get(entity_id, []), prices, now)
        if _insert(store, invoice):
            created.append(invoice)
        else:
            skipped.append(invoice.id)
    _warn_unattributed(store, column, start, end, period)
    logger.info("invoices for %s: %d created, %d already there", period, len(created), len(skipped))
    return Generation(period, tuple(created), tuple(skipped))


def list_invoices(
    store: Store, *, period: str | None = None, status: str | None = None, entity_id: str | None = None
) -> list[Invoice]:
    """Invoices with their lines, newest period first, then by entity."""
    i = INVOICES_TABLE.c
    filters = ((i.period, period), (i.status, status), (i.entity_id, entity_id))
    return _load(store, [column == value for column, value in filters if value is not None])


def get_invoice(store: Store, invoice_id: str) -> Invoice | None:
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


_CSV_COLUMNS = (
    "invoice_id",
    "entity_type",
    "entity_id",
    "period",
    "currency",
    "status",
    "invoice_subtotal",
    "invoice_markup",
    "invoice_total",
    "invoice_unpriced_requests",
    "line_kind",
    "line_key",
    "requests",
    "unpriced_requests",
    *TOKEN_KINDS,
    "cost_usd",
    "amount",
    "unit_prices_per_million",
)


def export_invoices(invoices: Sequence[Invoice], fmt: str) -> str:
    """``invoices`` as JSON (a list of ``Invoice.as_json``) or CSV, money as decimal strings.

    CSV has one row per invoice line; the invoice's columns repeat on each of its lines.
    """
    if fmt == "json":
        return orjson.dumps([invoice.as_json() for invoice in invoices], option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt != "csv":
        raise ValueError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    out = io.StringIO()
    # RFC 4180 line ends: the csv module then quotes a cell holding a lone \r, which would otherwise end the row.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_COLUMNS)
    for invoice in invoices:
        head = invoice.as_json()
        for line in head["lines"]:
            prices = line["unit_prices_per_million"]
            cells = (
                [head[name] for name in ("id", "entity_type", "entity_id", "period", "currency", "status")]
                + [head["subtotal"], head["markup"], head["total"], head["unpriced_requests"]]
                + [line[name] for name in ("kind", "key", "requests", "unpriced_requests", *TOKEN_KINDS)]
                + [line["cost_usd"], line["amount"], "" if prices is None else orjson.dumps(prices).decode()]
            )
            # Entity ids and model names come from clients; amounts are non-negative decimals, never escaped.
            writer.writerow([spreadsheet_cell(cell) for cell in cells])
    return out.getvalue()


class InvoiceScheduler:
    """Generates last month's invoices inside the server once ``due_period`` says so.

    Every instance may run one: generation is idempotent and safe when concurrent. It checks
    every ``interval`` seconds and generates a period once per process; after a restart it
    generates it again, which creates only what is missing.
    """

    def __init__(
        self,
        store: Store,
        settings: BillingSettings | CurrentBilling,
        *,
        prices: Catalog | None = None,
        clock: Clock = system_clock,
        interval: float = 300.0,
    ) -> None:
        self._billing = settings if isinstance(settings, CurrentBilling) else CurrentBilling(settings)
        self._store = store
        self._prices = prices
        self._clock = clock
        self._interval = interval
        self._done: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def settings(self) -> BillingSettings:
        """The settings in force now (a reload may have changed them since the start)."""
        return self._billing.settings

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tollgate-invoices")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def run_once(self) -> Generation | None:
        """Generate the due period if this process has not yet; None when there was nothing to do."""
        now = self._clock()
        settings = self.settings  # one reading, so a reload cannot change them mid-run
        period = due_period(now, settings)
        if period is None or period == self._done:
            return None
        result = await asyncio.to_thread(generate_invoices, self._store, settings, period, now, prices=self._prices)
        self._done = period
        return result

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                # A database outage must not end the loop: the next tick tries again.
                logger.exception("invoice generation failed; retrying in %.0fs", self._interval)
            await asyncio.sleep(self._interval)


@dataclass(frozen=True, slots=True)
class _Usage:
    key: str
    requests: int
    unpriced_requests: int
    tokens: dict[str, int]
    cost_pico: int


def _usage_by(store: Store, entity: str, key: str, start: datetime, end: datetime) -> dict[str, list[_Usage]]:
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
    usage: dict[str, list[_Usage]] = {}
    for row in rows:
        tokens = {kind: int(value) for kind, value in zip(TOKEN_KINDS, row[5:], strict=True)}
        usage.setdefault(str(row[0]), []).append(_Usage(str(row[1]), int(row[2]), int(row[3]), tokens, int(row[4])))
    return usage


def _warn_unattributed(store: Store, entity: str, start: datetime, end: datetime, period: str) -> None:
    t = USAGE_TABLE.c
    query = sa.select(sa.func.count()).where(t[entity].is_(None), t.started_at >= start, t.started_at < end)
    with store.engine.connect() as conn:
        count = int(conn.execute(query).scalar_one())
    if count:
        logger.warning("%d requests in %s have no %s and are on no invoice", count, period, entity)


def _build(
    settings: BillingSettings,
    entity_id: str,
    period: str,
    models: Sequence[_Usage],
    agents: Sequence[_Usage],
    prices: Catalog | None,
    now: datetime,
) -> Invoice:
    model_lines = _lines(settings, "model", models, prices)
    subtotal = Decimal(0)
    for line in model_lines:
        subtotal = _EXACT.add(subtotal, line.amount)
    markup = settings.round(_EXACT.divide(_EXACT.multiply(subtotal, settings.markup_percent), 100))
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
        markup_percent=settings.markup_percent,
        markup=markup,
        total=_EXACT.add(subtotal, markup),
        requests=sum(u.requests for u in models),
        unpriced_requests=sum(u.unpriced_requests for u in models),
        created_at=now,
        updated_at=now,
        lines=(*model_lines, *_lines(settings, "agent", agents, None)),
    )


def _lines(settings: BillingSettings, kind: str, usage: Sequence[_Usage], prices: Catalog | None) -> list[InvoiceLine]:
    lines = [
        InvoiceLine(
            kind=kind,
            key=u.key,
            requests=u.requests,
            unpriced_requests=u.unpriced_requests,
            tokens=u.tokens,
            cost_usd=pico_to_usd(u.cost_pico),
            amount=settings.round(_EXACT.multiply(pico_to_usd(u.cost_pico), settings.exchange_rate)),
            unit_prices=_unit_prices(prices, u.key, settings.exchange_rate) if kind == "model" else None,
        )
        for u in usage
    ]
    return sorted(lines, key=lambda line: (-line.cost_usd, line.key))


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
