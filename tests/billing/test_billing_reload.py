"""A reloaded [billing] section takes effect: admin invoice generation and the scheduler read the new settings."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.clock import fixed_clock
from proxy.config import load_config
from proxy.recording.store import Store
from tests.recording.test_store import _BASE

ADMIN = {"authorization": "Bearer s3cret"}
USD_2 = 2 * 10**12


def _write(path: Path, markup: str) -> None:
    path.write_text(
        f'[database]\nurl = "sqlite:///{path.parent / "tollgate.db"}"\n'
        f'[recorder]\njournal_dir = "{path.parent / "journal"}"\n'
        f'[billing]\nmarkup_percent = "{markup}"\n'
    )


def test_reloaded_billing_settings_are_used_by_invoice_generation_and_the_scheduler(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    _write(path, "0")
    # November 1st: October has ended, but the scheduler's generation day (the 2nd) has not come, so only
    # the admin request below generates October's invoice.
    now = datetime(2026, 11, 1, 12, tzinfo=UTC)
    app = create_app(load_config(path), admin_key="s3cret", clock=fixed_clock(now))
    with TestClient(app) as client:
        store = Store(load_config(path).database.url)
        store.insert_records(
            [dataclasses.replace(_BASE, started_at=datetime(2026, 10, 15, tzinfo=UTC), cost_pico=USD_2)]
        )
        _write(path, "12.5")
        assert client.app_state["reloader"].reload()
        [invoice] = client.post("/admin/invoices/generate?period=2026-10", headers=ADMIN).json()["created"]
        assert (invoice["markup_percent"], invoice["subtotal"], invoice["markup"], invoice["total"]) == (
            "12.5",
            "2.00",
            "0.25",
            "2.25",
        )
        assert client.app_state["invoicing"].settings.markup_percent == 12.5
    store.dispose()
