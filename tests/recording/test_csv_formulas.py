"""CSV exports cannot carry a spreadsheet formula: text that a spreadsheet would run is escaped (OWASP)."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from proxy.billing.export import export_invoices
from proxy.billing.invoice import Invoice, InvoiceLine
from proxy.cli import main
from proxy.recording.export import iter_usage, write_csv
from proxy.recording.store import Store
from tests.recording.test_store import _BASE

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TEXT = st.text(max_size=40)
ATTACKS = ('=HYPERLINK("http://evil.example","x")', "@SUM(1+1)", "+cmd|' /C calc'!A0", "-2+3", "\t=1", "\r=1")


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def _unescaped(cell: str) -> str:
    """What a spreadsheet shows, and what a reader that knows the rule gets back: one leading quote dropped."""
    return cell[1:] if cell.startswith("'") else cell


def _usage_csv(user: str, agent: str, tag: str) -> tuple[list[str], list[str]]:
    record = dataclasses.replace(_BASE, user_id=user, agent=agent, tags=orjson.dumps({"t": tag}).decode())
    out = io.StringIO(newline="")
    write_csv(iter([{**dataclasses.asdict(record)}]), out)
    header, row = _cells(out.getvalue())
    return header, row


@given(user=TEXT, agent=TEXT, tags=TEXT)
@example(user=ATTACKS[0], agent=ATTACKS[1], tags=ATTACKS[2])
@example(user=ATTACKS[3], agent=ATTACKS[4], tags=ATTACKS[5])
@example(user="'=already quoted", agent="'", tags="plain")
def test_usage_csv_text_cells_never_start_a_formula_and_read_back(user: str, agent: str, tags: str) -> None:
    header, row = _usage_csv(user, agent, tags)
    assert not any(cell.startswith(FORMULA_STARTS) for cell in row)
    by_name = dict(zip(header, row, strict=True))
    assert [_unescaped(by_name[n]) for n in ("user_id", "agent")] == [user, agent]
    assert by_name["tags"] == "t=" + tags.replace("\\", "\\\\").replace(";", "\\;").replace("=", "\\=")
    assert by_name["cost_pico"] == str(_BASE.cost_pico) and by_name["input_tokens"] == str(_BASE.input_tokens)


def _invoice(entity: str, model: str) -> Invoice:
    now = datetime(2026, 11, 2, tzinfo=UTC)
    line = InvoiceLine("model", model, 3, 0, {"input_tokens": 7}, Decimal("0.125"), Decimal("0.13"))
    money: dict[str, Any] = {"cost_usd": Decimal("0.125"), "exchange_rate": Decimal(1), "subtotal": Decimal("0.13")}
    return Invoice(
        f"inv_{entity[:3]}", "user", entity, "2026-10", "USD", "pending", **money,
        markup_percent=Decimal(0), markup=Decimal(0), total=Decimal("0.13"),
        requests=3, unpriced_requests=0, created_at=now, updated_at=now, lines=(line,),
    )  # fmt: skip


@given(entity=TEXT, model=TEXT)
@example(entity=ATTACKS[0], model=ATTACKS[2])
@example(entity=ATTACKS[1], model=ATTACKS[4])
@example(entity="a\rb", model="c\nd")  # a lone CR inside a cell must not end the row
def test_invoice_csv_text_cells_never_start_a_formula_and_read_back(entity: str, model: str) -> None:
    header, row = _cells(export_invoices([_invoice(entity, model)], "csv"))
    assert not any(cell.startswith(FORMULA_STARTS) for cell in row)
    by_name = dict(zip(header, row, strict=True))
    assert (_unescaped(by_name["entity_id"]), _unescaped(by_name["line_key"])) == (entity, model)
    assert (by_name["invoice_total"], by_name["amount"], by_name["requests"]) == ("0.13", "0.13", "3")


def test_export_command_escapes_a_user_id_that_a_client_chose(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(db_url)
    store.create_tables()
    store.insert_records([dataclasses.replace(_BASE, user_id=ATTACKS[0])])
    assert [row["user_id"] for row in iter_usage(store)] == [ATTACKS[0]]  # the database keeps what was sent
    store.dispose()
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')
    assert main(["export", "usage", "--config", str(config), "--format", "csv"]) == 0
    header, row = _cells(capsys.readouterr().out)
    assert dict(zip(header, row, strict=True))["user_id"] == "'" + ATTACKS[0]
