"""The usage store a target records into, and waiting for its rows to drain.

Tollgate writes rows in batches off the request path, so after wrk stops we
poll the row count until it reaches the number of responses; that wait is the
drain time. SQLite is read with the stdlib module, PostgreSQL with psycopg in
a schema of its own (dropped afterwards) so the bench never touches tables of
tests that may share the database.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Protocol

import psycopg
from psycopg import sql

TABLE = "usage_records"
POSTGRES_URL_ENV = "TOLLGATE_TEST_POSTGRES_URL"
_POLL_S = 0.01


class Database(Protocol):
    kind: str
    url: str  # as written in the target's config
    env: dict[str, str]  # extra environment for the target's process

    def count_rows(self) -> int: ...

    def close(self) -> None: ...


class SqliteDatabase:
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self.env: dict[str, str] = {}

    def count_rows(self) -> int:
        if not self.path.exists():
            return 0
        with contextlib.closing(sqlite3.connect(self.path, timeout=5)) as connection:
            try:
                row = connection.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return 0
                raise
        return int(row[0])

    def close(self) -> None:
        pass  # the file lives in the run's temporary directory


class PostgresDatabase:
    kind = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url
        self.schema = f"bench_{secrets.token_hex(4)}"
        # libpq reads PGOPTIONS, so every connection Tollgate opens lands in our schema.
        self.env = {"PGOPTIONS": f"-csearch_path={self.schema}"}
        self._connection = psycopg.connect(url, autocommit=True)
        self._connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))

    def count_rows(self) -> int:
        table = sql.Identifier(self.schema, TABLE)
        try:
            row = self._connection.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        try:
            self._connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(self.schema)))
        finally:
            self._connection.close()


def open_database(kind: str, workdir: Path) -> Database:
    if kind == "sqlite":
        return SqliteDatabase(workdir / "tollgate.db")
    if kind == "postgres":
        url = os.environ.get(POSTGRES_URL_ENV)
        if not url:
            raise RuntimeError(f"${POSTGRES_URL_ENV} is not set")
        return PostgresDatabase(url)
    raise ValueError(f"unknown database kind {kind!r}")


def wait_for_rows(database: Database, expected: int, *, since: float, timeout_s: float) -> float | None:
    """Seconds from `since` (a perf_counter) until `expected` rows are in, or None on timeout."""
    deadline = since + timeout_s
    while time.perf_counter() < deadline:
        if database.count_rows() >= expected:
            return time.perf_counter() - since
        time.sleep(_POLL_S)
    return None


def settle_rows(database: Database, *, since: float, quiet_s: float = 0.3, timeout_s: float = 3.0) -> tuple[int, float]:
    """The row count once it has not changed for `quiet_s`, and when (seconds after `since`) it last grew.

    Requests in flight when wrk stopped may still land after the count has
    reached the responses; the drain lasts until the last of them.
    """
    count, grew_at = database.count_rows(), time.perf_counter()
    deadline = grew_at + timeout_s
    while time.perf_counter() < deadline:
        time.sleep(_POLL_S)
        latest, now = database.count_rows(), time.perf_counter()
        if latest != count:
            count, grew_at = latest, now
        elif now - grew_at >= quiet_s:
            break
    return count, grew_at - since
