"""A price import, new rows at new prices, old rows unchanged; a reprice that is a dry run, then applied."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from pricing import Catalog, TokenCounts, cost_to_pico, price_tokens
from proxy.billing.queries import generate_invoices, list_invoices
from proxy.billing.settings import BillingSettings
from proxy.cli import main
from proxy.limits.ledger import Ledger
from proxy.limits.rules import counter_window
from proxy.recording.reports import usage_report
from proxy.recording.rollups import rebuild_rollups
from proxy.recording.tables import REPRICE_AUDIT_TABLE
from tests.pricehistory.conftest import NOV_10, Running, rows, sums

TOKENS = TokenCounts(input=1000, output=500)


def _cost(input_per_million: str, output_per_million: str) -> int:
    rates = {"input": input_per_million, "output": output_per_million}
    catalog = Catalog.from_entries({}, {"gpt-4o-mini": rates})
    card = catalog.lookup("gpt-4o-mini")
    assert card is not None
    return cost_to_pico(price_tokens(card, TOKENS).total)


def _import(running: Running, tmp_path: Path, name: str, text: str, effective: str) -> None:
    sheet = tmp_path / name
    sheet.write_text(text)
    assert main(["prices", "--config", str(running.config_path), "import", str(sheet), "--effective", effective]) == 0


def test_an_import_prices_new_rows_and_leaves_old_ones(running: Running, tmp_path: Path) -> None:
    old = running.ask("alice")
    assert (old["cost_pico"], old["price_version"]) == (_cost("0.15", "0.60"), None)
    _import(running, tmp_path, "sheet.json", '{"gpt-4o-mini": {"input": "0.30", "output": "1.20"}}', "2026-11-15")
    running.reload()
    running.clock.now = NOV_10 + timedelta(days=2)  # before the new version takes effect
    assert running.ask("alice")["price_version"] is None
    running.clock.now = NOV_10 + timedelta(days=10)
    new = running.ask("alice")
    assert (new["cost_pico"], new["price_version"]) == (_cost("0.30", "1.20"), 1)
    assert rows(running.store)[0]["cost_pico"] == old["cost_pico"]


def test_a_reprice_without_apply_changes_nothing_and_shows_what_would(
    running: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running.ask("alice")
    running.ask("bob")
    _import(running, tmp_path, "fix.csv", "model,input,output\ngpt-4o-mini,0.10,0.40\n", "2026-11-01")
    before = sums(running.store)
    capsys.readouterr()
    config = str(running.config_path)
    assert main(["reprice", "--config", config, "--since", "2026-11-01", "--until", "2026-12-01"]) == 0
    out = capsys.readouterr().out
    assert "2 rows read, 2 would change" in out and "dry run: nothing changed" in out
    table = [line.split() for line in out.splitlines()[1:-1]]
    assert table == [
        ["user", "model", "rows", "before", "after", "change", "unpriced"],
        ["alice", "gpt-4o-mini", "1", "$0.00045", "$0.00030", "-$0.00015"],
        ["bob", "gpt-4o-mini", "1", "$0.00045", "$0.00030", "-$0.00015"],
    ]
    assert (_cost("0.15", "0.60"), _cost("0.10", "0.40")) == (450_000_000, 300_000_000)
    assert sums(running.store) == before


def test_an_applied_reprice_keeps_rollups_counters_and_reports_equal_to_a_rebuild(
    running: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for user, hours in (("alice", 0), ("bob", 1), ("alice", 30)):
        running.clock.now = NOV_10 + timedelta(hours=hours)
        running.ask(user)
    running.clock.now = datetime(2026, 12, 2, tzinfo=UTC)
    settings = BillingSettings()
    issued = generate_invoices(running.store, settings, "2026-11", running.clock.now).created
    assert len(issued) == 2
    _import(running, tmp_path, "fix.toml", '["gpt-4o-mini"]\ninput = "0.10"\noutput = "0.40"\n', "2026-11-01")
    config = str(running.config_path)
    window = ["--since", "2026-11-10T12:30", "--until", "2026-12-01"]  # alice's first request stays as it was
    assert main(["reprice", "--config", config, *window, "--apply"]) == 0
    assert "2 changed" in capsys.readouterr().out
    [first, second, third] = rows(running.store)
    assert (first["cost_pico"], first["price_version"]) == (_cost("0.15", "0.60"), None)
    assert [(r["cost_pico"], r["price_version"]) for r in (second, third)] == [(_cost("0.10", "0.40"), 1)] * 2
    repriced = sums(running.store)
    nov = datetime(2026, 11, 1, tzinfo=UTC)
    reports = {g: usage_report(running.store, g, since=nov) for g in (None, "user", "day")}
    rebuild_rollups(running.store, hourly_since=nov)
    assert sums(running.store) == repriced
    assert {g: usage_report(running.store, g, since=nov, use_rollups=False) for g in reports} == reports
    ledger = Ledger(running.store, "test")
    with running.store.engine.connect() as conn:
        for key, spent in repriced["counters"]:
            assert spent == ledger.rows_spent(conn, counter_window(key))
        [audit] = conn.execute(sa.select(REPRICE_AUDIT_TABLE)).mappings().all()
    assert (audit["rows_changed"], audit["version"]) == (2, None)
    assert audit["after_pico"] - audit["before_pico"] == 2 * (_cost("0.10", "0.40") - _cost("0.15", "0.60"))
    assert [dataclasses.replace(i, lines=()) for i in list_invoices(running.store)] == [
        dataclasses.replace(i, lines=()) for i in sorted(issued, key=lambda i: i.entity_id)
    ]
    assert main(["invoices", "correct", "--config", config, "--period", "2026-11"]) == 0
    out = capsys.readouterr().out
    assert "2026-11: 2 corrected" in out and "correcting inv_2026-11_user_alice" in out
    corrected = {i.id: i for i in list_invoices(running.store, period="2026-11")}
    alice = corrected["inv_2026-11_user_alice-r1"]
    assert (alice.corrects, alice.revision, alice.cost_usd) == ("inv_2026-11_user_alice", 1, Decimal("0.00075"))
    assert corrected["inv_2026-11_user_alice"] == next(i for i in issued if i.entity_id == "alice")
    assert main(["invoices", "correct", "--config", config, "--period", "2026-11"]) == 0  # nothing changed since
    assert "2026-11: 0 corrected" in capsys.readouterr().out


def test_a_reprice_with_an_unknown_version_is_refused(running: Running, capsys: pytest.CaptureFixture[str]) -> None:
    running.ask("alice")
    config = str(running.config_path)
    args = ["reprice", "--config", config, "--since", "2026-11-01", "--until", "2026-12-01", "--version", "9"]
    assert main(args) == 1
    assert "no price version 9" in capsys.readouterr().err
