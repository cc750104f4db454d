"""SQLite runs with a rollback journal, never WAL's memory-mapped index, and a WAL database is switched over."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from pathlib import Path

import pytest

from proxy.recording.store import Store
from tests.recording.test_store import _BASE


def _wal_database(path: Path) -> None:
    """A database as Tollgate made them before: in WAL mode, with a row."""
    store = Store(f"sqlite:///{path}")
    store.create_tables()
    store.dispose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    conn.close()


def _journal_mode(store: Store) -> str:
    with store.write_engine.connect() as conn:
        return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar_one())


def test_a_new_database_has_a_rollback_journal_and_no_memory_map(db_url: str) -> None:
    store = Store(db_url)
    store.create_tables()
    store.insert_records([_BASE])
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA mmap_size").scalar_one() == 0
    assert _journal_mode(store) == "truncate"
    folder = Path(db_url.removeprefix("sqlite:///")).parent
    assert not list(folder.glob("*-shm")) and not list(folder.glob("*-wal"))
    store.dispose()


def test_a_wal_database_is_switched_to_a_rollback_journal_when_opened_alone(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _wal_database(path)
    store = Store(f"sqlite:///{path}")
    assert _journal_mode(store) == "truncate"
    store.insert_records([_BASE])
    assert store.count_records() == 1
    store.dispose()
    assert not (tmp_path / "old.db-shm").exists() and not (tmp_path / "old.db-wal").exists()


def test_a_wal_database_open_elsewhere_stays_usable_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "shared.db"
    _wal_database(path)
    other = sqlite3.connect(path)  # another process's connection, as far as SQLite can tell
    other.execute("SELECT count(*) FROM usage_records").fetchone()
    store = Store(f"sqlite:///{path}")
    with caplog.at_level(logging.WARNING, logger="tollgate.store"):
        store.insert_records([dataclasses.replace(_BASE, request_id="while-shared")])
    assert f"{path} stays in WAL mode" in caplog.text and "SIGBUS" in caplog.text
    assert store.count_records() == 1 and _journal_mode(store) == "wal"
    other.close()
    store.dispose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT request_id FROM usage_records").fetchall() == [("while-shared",)]
    conn.close()
