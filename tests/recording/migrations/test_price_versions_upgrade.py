"""The price history migration upgrades a database of the revision before it in place, every row kept."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import command

from proxy.recording.migrations import HEAD
from proxy.recording.migrations.schema import alembic_config
from proxy.recording.store import Store
from tests.recording.migrations.conftest import create_released_schema, insert_rows, kept, read_rows, released_rows

PRICE_HISTORY = "0009"  # this revision


def test_a_database_before_price_history_upgrades_in_place_keeping_every_row(
    any_db_url: str, make_store: Callable[[str], Store]
) -> None:
    create_released_schema(any_db_url)
    store = make_store(any_db_url)
    rows = released_rows(store.dialect)
    insert_rows(any_db_url, rows)
    with store.write_engine.begin() as conn:
        command.stamp(alembic_config(conn), "0001")
        command.upgrade(alembic_config(conn), f"{PRICE_HISTORY}-1")
    before = read_rows(any_db_url, list(rows))
    store.create_tables()  # what a server does at start: upgrade to the newest
    after = read_rows(any_db_url, list(rows))
    assert kept(before, after) == before
    assert all(row["price_version"] is None and row["provider_cost_pico"] is None for row in after["usage_records"])
    assert all(row["price_book"] is None for row in after["invoices"])
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
        assert conn.execute(sa.text("SELECT count(*) FROM price_versions")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM reprice_audit")).scalar_one() == 0
