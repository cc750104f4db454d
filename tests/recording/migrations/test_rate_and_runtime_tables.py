"""Migration 0007 (rate leases, runtime limits, their audit): a database at 0006 upgrades in place, every row kept."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import sqlalchemy as sa
from alembic import command

from proxy.recording.migrations import HEAD
from proxy.recording.migrations.schema import alembic_config, read_revision
from proxy.recording.store import Store
from proxy.recording.tables import COUNTERS_TABLE, LEASES_TABLE, USAGE_TABLE
from tests.recording.test_store import _BASE

StoreFactory = Callable[[str], Store]


def _table_rows(store: Store, table: sa.Table) -> list[tuple[object, ...]]:
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(table.select().order_by(*table.primary_key.columns))]


def test_a_database_at_0006_upgrades_to_0007_keeping_every_row(any_db_url: str, make_store: StoreFactory) -> None:
    store = make_store(any_db_url)
    with store.write_engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0006")
    store.insert_records([dataclasses.replace(_BASE, request_id=f"r{i}") for i in range(5)])
    with store.write_engine.begin() as conn:
        conn.execute(COUNTERS_TABLE.insert().values(counter_key="user:alice:day:2026-11-25", spent_pico=42))
        conn.execute(
            LEASES_TABLE.insert().values(
                counter_key="user:alice:day:2026-11-25", holder="w", amount_pico=7, expires_at=1.0
            )
        )
    before = {t.name: _table_rows(store, t) for t in (USAGE_TABLE, COUNTERS_TABLE, LEASES_TABLE)}
    store.create_tables()
    with store.engine.connect() as conn:
        assert read_revision(conn) == HEAD
        tables = set(sa.inspect(conn).get_table_names())
    assert {"rate_leases", "runtime_limits", "limit_changes"} <= tables
    assert {t.name: _table_rows(store, t) for t in (USAGE_TABLE, COUNTERS_TABLE, LEASES_TABLE)} == before
    assert len(before["usage_records"]) == 5
