"""The migrations make the released schema, end where the models are, and are numbered as the package says."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from proxy.recording.migrations import HEAD
from proxy.recording.migrations.schema import CONTEXT_OPTIONS, alembic_config, scripts
from proxy.recording.store import Store
from tests.recording.migrations.conftest import create_released_schema, describe_schema


def test_head_is_the_newest_migration() -> None:
    assert scripts().get_heads() == [HEAD]


def test_revisions_are_numbered_in_order() -> None:
    chain = [s.revision for s in reversed(list(scripts().walk_revisions()))]
    assert chain == [f"{n:04d}" for n in range(1, len(chain) + 1)]
    assert all(s.path.endswith(f"/{s.revision}_{s.path.split('_', 1)[1]}") for s in scripts().walk_revisions())


def test_baseline_makes_the_schema_of_the_released_code(any_db_url: str, make_store: Callable[[str], Store]) -> None:
    create_released_schema(any_db_url)
    released = describe_schema(any_db_url)
    with make_store(any_db_url).write_engine.begin() as conn:
        reflected = sa.MetaData()
        reflected.reflect(conn)
        reflected.drop_all(conn)
        command.upgrade(alembic_config(conn), "0001")
    assert len(released) == 7
    assert describe_schema(any_db_url) == released


def test_every_migration_downgrades_and_upgrades_again(any_db_url: str, make_store: Callable[[str], Store]) -> None:
    store = make_store(any_db_url)
    store.create_tables()
    newest = describe_schema(any_db_url)
    with store.write_engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert describe_schema(any_db_url) == {}
    store.create_tables()
    assert describe_schema(any_db_url) == newest


def _differences(store: Store, metadata: sa.MetaData) -> list[object]:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts=CONTEXT_OPTIONS)
        return list(compare_metadata(context, metadata))


def test_migrated_schema_is_what_the_models_say(any_db_url: str, make_store: Callable[[str], Store]) -> None:
    store = make_store(any_db_url)
    store.create_tables()
    assert _differences(store, SQLModel.metadata) == []


def test_a_model_change_without_a_migration_is_a_difference(
    any_db_url: str, make_store: Callable[[str], Store]
) -> None:
    store = make_store(any_db_url)
    store.create_tables()
    changed = sa.MetaData()
    for table in SQLModel.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["usage_records"].append_column(sa.Column("region", sa.String(32)))
    changed.tables["invoices"].c.currency.type = sa.String(16)
    differences = _differences(store, changed)
    assert [d[0] for d in differences if isinstance(d, tuple)] == ["add_column"]
    assert [d[0][0] for d in differences if isinstance(d, list)] == ["modify_type"]
