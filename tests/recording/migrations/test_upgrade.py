"""``Store.create_tables`` upgrades: a new database, one made by 0.1.0 with its rows, and a current one."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from proxy.recording.migrations import HEAD, UpgradeRefused
from proxy.recording.migrations.schema import BASELINE_TABLES, read_revision
from proxy.recording.store import Store, engine_url
from tests.recording.migrations.conftest import create_released_schema, insert_rows, kept, read_rows, released_rows

StoreFactory = Callable[[str], Store]


def _revision(store: Store) -> str | None:
    with store.engine.connect() as conn:
        return read_revision(conn)


def test_a_new_database_gets_every_migration(any_db_url: str, make_store: StoreFactory) -> None:
    store = make_store(any_db_url)
    assert _revision(store) is None
    store.create_tables()
    assert _revision(store) == HEAD
    assert BASELINE_TABLES <= set(sa.inspect(store.engine).get_table_names())


def test_a_released_database_is_upgraded_with_every_row_kept(any_db_url: str, make_store: StoreFactory) -> None:
    create_released_schema(any_db_url)
    store = make_store(any_db_url)
    rows = released_rows(store.dialect)
    insert_rows(any_db_url, rows)
    before = read_rows(any_db_url, list(rows))
    assert {table: len(found) for table, found in before.items()} == {table: len(r) for table, r in rows.items()}
    store.create_tables()
    assert _revision(store) == HEAD
    assert kept(before, read_rows(any_db_url, list(rows))) == before


def test_a_current_database_is_checked_without_loading_alembic(db_url: str, make_store: StoreFactory) -> None:
    make_store(db_url).create_tables()
    code = (
        "import sys\nfrom proxy.recording.store import Store\n"
        f"Store({db_url!r}).create_tables()\nprint(sorted(m for m in sys.modules if m.startswith('alembic')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout == "[]\n"


def test_a_database_newer_than_this_tollgate_is_refused(any_db_url: str, make_store: StoreFactory) -> None:
    url = sa.make_url(any_db_url).set(password="s3cret").render_as_string(hide_password=False)
    store = make_store(url)
    store.create_tables()
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    with pytest.raises(UpgradeRefused) as refused:
        store.create_tables()
    message = str(refused.value)
    assert "schema revision 0999, which this Tollgate does not know" in message
    assert sa.make_url(url).render_as_string(hide_password=True) in message
    assert "s3cret" not in message
    assert _revision(store) == "0999"


def test_some_tables_without_a_revision_are_refused(db_url: str, make_store: StoreFactory) -> None:
    store = make_store(db_url)
    with store.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE usage_records (request_id VARCHAR(64) PRIMARY KEY)"))
    with pytest.raises(UpgradeRefused, match=f"database {db_url} has some of Tollgate's tables .usage_records."):
        store.create_tables()
    assert _revision(store) is None


@pytest.fixture
def reader_url(postgres_url: str) -> Iterator[str]:
    """``postgres_url`` as a user who may read and write the test schema's tables but not create or alter any."""
    role = f"tollgate_reader_{uuid.uuid4().hex[:8]}"
    url = sa.make_url(postgres_url)
    schema = str(url.query["options"]).split("=", 1)[1]  # options=-csearch_path=<schema>
    admin = sa.create_engine(engine_url(postgres_url))
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(sa.text(f"GRANT USAGE ON SCHEMA {schema} TO {role}"))
        conn.execute(sa.text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT ON TABLES TO {role}"))
    try:
        yield url.set(username=role).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP OWNED BY {role}"))
            conn.execute(sa.text(f"DROP ROLE {role}"))
        admin.dispose()


@pytest.mark.postgres
def test_without_ddl_rights_the_upgrade_is_refused_and_rolled_back(
    postgres_url: str, reader_url: str, make_store: StoreFactory
) -> None:
    create_released_schema(postgres_url)
    with pytest.raises(UpgradeRefused) as refused:
        make_store(reader_url).create_tables()
    message = str(refused.value)
    assert message.startswith(f"could not upgrade database {reader_url} to schema revision {HEAD}: ")
    assert "permission denied for schema" in message
    assert "whose user may create and alter tables (or run `tollgate db upgrade` once as a user who may)" in message
    assert _revision(make_store(postgres_url)) is None


@pytest.mark.postgres
def test_a_current_database_needs_no_ddl_rights(postgres_url: str, reader_url: str, make_store: StoreFactory) -> None:
    make_store(postgres_url).create_tables()
    reader = make_store(reader_url)
    reader.create_tables()
    assert _revision(reader) == HEAD


_START_TOGETHER = """
import sys, time
from pathlib import Path
from proxy.recording.store import Store, engine_url
store, folder = Store(sys.argv[1]), Path(sys.argv[2])
(folder / f"ready-{sys.argv[3]}").touch()
while not (folder / "go").exists():
    time.sleep(0.001)
store.create_tables()
"""


@pytest.mark.slow
@pytest.mark.parametrize("made_by", ["nothing", "0.1.0"])
def test_two_processes_upgrading_at_once_both_start(
    any_db_url: str, made_by: str, tmp_path: Path, make_store: StoreFactory
) -> None:
    if made_by == "0.1.0":
        create_released_schema(any_db_url)
        insert_rows(any_db_url, released_rows(make_store(any_db_url).dialect))
    folder = tmp_path / "barrier"
    folder.mkdir()
    command = [sys.executable, "-c", _START_TOGETHER, any_db_url, str(folder)]
    processes = [subprocess.Popen([*command, str(n)], stderr=subprocess.PIPE, text=True) for n in range(2)]
    deadline = time.monotonic() + 60
    while len(list(folder.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    (folder / "go").touch()
    errors = [process.communicate(timeout=60)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], errors
    with make_store(any_db_url).engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
        assert conn.execute(sa.text("SELECT count(*) FROM usage_records")).scalar_one() == (
            2 if made_by == "0.1.0" else 0
        )
