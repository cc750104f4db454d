"""SQLite as Tollgate opens it: where its file is, and how each connection is set up.

A rollback journal rather than WAL, and no memory-mapped I/O: see ``sqlite_pragmas``.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa

logger = logging.getLogger("tollgate.store")
_STILL_WAL: set[str] = set()  # SQLite files said to be still in WAL mode, so that it is said once


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names, made absolute; None for PostgreSQL, in-memory SQLite and URI filenames."""
    parsed = sa.engine.make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).absolute()


def take_transactions(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event decide how transactions start (pysqlite would start them itself).
    dbapi_connection.isolation_level = None


def begin_immediate(conn: sa.Connection) -> None:
    # A write transaction takes the write lock when it starts, so a read-then-write (a budget lease)
    # cannot interleave with another process's write; busy_timeout makes the others wait.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    # No memory-mapped I/O, and a rollback journal rather than WAL. WAL keeps its index in the -shm file,
    # mapped into memory, and a write to that mapping once the file is immutable (chattr +i: ext4 then
    # flushes the pages read-only) or cut short is a SIGBUS, which kills the process with every request in
    # it. Through read() and write() alone, a file SQLite cannot write is an error: the recorder keeps the
    # records in its journal, and writes them when the file is writable again. The cost: a long read holds
    # back a write's commit (busy_timeout makes it wait), so exports read in short pages.
    cursor.execute("PRAGMA mmap_size=0")
    try:
        cursor.execute("PRAGMA journal_mode=TRUNCATE")
    except sqlite3.OperationalError:
        # A database made in WAL mode (before this change) leaves it only when no other connection has it open.
        (_seq, _name, path) = cursor.execute("PRAGMA database_list").fetchone()
        if path not in _STILL_WAL:
            _STILL_WAL.add(path)
            logger.warning(
                "the SQLite database %s stays in WAL mode for now: another process has it open. Stop every "
                "Tollgate process and command using it, then start one, which switches it to a rollback journal. "
                "Until then, making its files read-only or immutable can crash Tollgate (SIGBUS).",
                path,
            )
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
