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


def _table_rows(store: Store, table: sa.Table, columns: list[str]) -> list[tuple[object, ...]]:
    """The rows of ``table`` in the columns it had at 0006 (later revisions add columns)."""
    selected = [table.c[name] for name in columns]
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(*selected).order_by(*table.primary_key.columns))]


def _columns_at(store: Store, table: sa.Table) -> list[str]:
    with store.engine.connect() as conn:
        return [column["name"] for column in sa.inspect(conn).get_columns(table.name)]


def test_a_database_at_0006_upgrades_to_0007_keeping_every_row(any_db_url: str, make_store: StoreFactory) -> None:
    store = make_store(any_db_url)
    with store.write_engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0006")
    columns = {table.name: _columns_at(store, table) for table in (USAGE_TABLE, COUNTERS_TABLE, LEASES_TABLE)}
    record = dataclasses.asdict(_BASE)
    with store.write_engine.begin() as conn:
        usage_at_0006 = sa.Table(USAGE_TABLE.name, sa.MetaData(), autoload_with=conn)
        conn.execute(
            usage_at_0006.insert(),
            [
                {name: value for name, value in {**record, "request_id": f"r{i}"}.items() if name in usage_at_0006.c}
                for i in range(5)
            ],
        )
        conn.execute(COUNTERS_TABLE.insert().values(counter_key="user:alice:day:2026-11-25", spent_pico=42))
        conn.execute(
            LEASES_TABLE.insert().values(
                counter_key="user:alice:day:2026-11-25", holder="w", amount_pico=7, expires_at=1.0
            )
        )
    before = {t.name: _table_rows(store, t, columns[t.name]) for t in (USAGE_TABLE, COUNTERS_TABLE, LEASES_TABLE)}
    store.create_tables()
    with store.engine.connect() as conn:
        assert read_revision(conn) == HEAD
        tables = set(sa.inspect(conn).get_table_names())
    assert {"rate_leases", "runtime_limits", "limit_changes"} <= tables
    after = {t.name: _table_rows(store, t, columns[t.name]) for t in (USAGE_TABLE, COUNTERS_TABLE, LEASES_TABLE)}
    assert after == before
    assert len(before["usage_records"]) == 5
