"""Invoices written out: JSON (a list of ``Invoice.as_json``), JSON lines, or CSV with one row per line.

``select_invoices`` narrows a list the way usage exports are narrowed: by user or team (the
invoiced entity), by a window (the invoices whose month overlaps it), and by model or agent
(only those lines; the invoice's own figures stay whole, as they were issued).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence
from datetime import datetime

import orjson

from proxy.billing.invoice import TOKEN_KINDS, Invoice
from proxy.billing.periods import parse_period
from proxy.recording.export import spreadsheet_cell

EXPORT_FORMATS = ("csv", "json", "jsonl")

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
    if fmt == "jsonl":
        return "".join(orjson.dumps(invoice.as_json()).decode() + "\n" for invoice in invoices)
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


def select_invoices(
    invoices: Sequence[Invoice],
    *,
    user: str | None = None,
    team: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    model: str | None = None,
    agent: str | None = None,
) -> list[Invoice]:
    """The invoices that match (see the module docstring); with ``model`` or ``agent``, only their lines."""
    chosen = []
    for invoice in invoices:
        if user is not None and (invoice.entity_type, invoice.entity_id) != ("user", user):
            continue
        if team is not None and (invoice.entity_type, invoice.entity_id) != ("team", team):
            continue
        start, end = parse_period(invoice.period)
        if (since is not None and end <= since) or (until is not None and start >= until):
            continue
        if model is not None or agent is not None:
            lines = tuple(
                line
                for line in invoice.lines
                if (model is not None and (line.kind, line.key) == ("model", model))
                or (agent is not None and (line.kind, line.key) == ("agent", agent))
            )
            if not lines:
                continue
            invoice = dataclasses.replace(invoice, lines=lines)
        chosen.append(invoice)
    return chosen
