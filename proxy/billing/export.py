"""Invoices written out: JSON (a list of ``Invoice.as_json``) or CSV with one row per invoice line."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import orjson

from proxy.billing.invoice import TOKEN_KINDS, Invoice
from proxy.recording.export import spreadsheet_cell

EXPORT_FORMATS = ("csv", "json")

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
