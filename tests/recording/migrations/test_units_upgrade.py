"""The units migration upgrades a database of the revision before it in place, every row kept."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import command

from pricing import UNIT_COUNT_COLUMNS
from proxy.recording.migrations import HEAD
from proxy.recording.migrations.schema import alembic_config
from proxy.recording.store import Store
from tests.recording.migrations.conftest import create_released_schema, insert_rows, kept, read_rows, released_rows

BEFORE_UNITS = "0007"  # the revision this one follows


def test_a_database_before_units_upgrades_in_place_keeping_every_row(
    any_db_url: str, make_store: Callable[[str], Store]
) -> None:
    create_released_schema(any_db_url)
    store = make_store(any_db_url)
    rows = released_rows(store.dialect)
    insert_rows(any_db_url, rows)
    with store.write_engine.begin() as conn:
        command.stamp(alembic_config(conn), "0001")
        command.upgrade(alembic_config(conn), BEFORE_UNITS)
    before = read_rows(any_db_url, list(rows))
    store.create_tables()  # what a server does at start: upgrade to the newest
    after = read_rows(any_db_url, list(rows))
    assert kept(before, after) == before
    assert after["usage_records"]
    for row in after["usage_records"]:
        assert all(row[column] == 0 for column in UNIT_COUNT_COLUMNS)
        assert row["unit_cost_pico"] is None and row["unpriced_units"] is None and row["resource_id"] is None
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
