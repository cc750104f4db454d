"""The usage store: the engines, and the statements that write usage rows.

SQLite (the embedded default, with a rollback journal: see ``sqlite_pragmas``) and
PostgreSQL (for fleets) run the same code. Handlers never build queries; they go through ``Store``.

Money is stored as integer picodollars (10**12 per USD) so that sums in SQL
are exact on both engines; ``pricing.pico_to_usd`` turns them back into
``Decimal`` dollars.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import operator
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from proxy.recording.migrations import HEAD
from proxy.recording.records import UsageRecord
from proxy.recording.sqlite import begin_immediate, sqlite_file, sqlite_pragmas, take_transactions
from proxy.recording.tables import USAGE_TABLE

logger = logging.getLogger("tollgate.store")


_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(UsageRecord))
_RECORD_VALUES = operator.attrgetter(*_RECORD_FIELDS)  # a record's column values as one tuple, built in C
_TIME_COLUMNS = tuple(i for i, f in enumerate(dataclasses.fields(UsageRecord)) if f.type == "datetime")
# sqlite3 binds an int straight away, but looks for an adapter for a bool first (raising and clearing two
# AttributeErrors), to store the same 0 or 1.
_BOOL_COLUMNS = tuple(i for i, f in enumerate(dataclasses.fields(UsageRecord)) if f.type == "bool")
# Rows per INSERT statement; 500 rows of a record's 55 values stay under SQLite's 32,766 bound parameters
# (tests/recording/test_store.py writes more rows than one statement takes, on both engines).
_STATEMENT_SIZES = (500, 100, 20, 5, 1)


def _raw_cursor(conn: sa.Connection) -> Any:
    import psycopg  # only where PostgreSQL is used: it costs SQLite deployments nothing at start

    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return psycopg.RawCursor(driver)


def _execute_raw(cursor: Any, sql: str, values: tuple[Any, ...]) -> list[Any]:
    """Run ``sql`` on a raw psycopg cursor; its errors are raised as SQLAlchemy's, as on every other path."""
    import psycopg

    try:
        cursor.execute(sql, values)
        return list(cursor.fetchall())
    except psycopg.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, None, exc, psycopg.Error) from exc


def _sqlite_time(value: datetime) -> str:
    if value.tzinfo is UTC:
        value = value.replace(tzinfo=None)
    elif value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(sep=" ", timespec="microseconds")


def engine_url(url: str) -> str:
    """Normalise a user's database URL to the driver Tollgate ships (psycopg 3 for PostgreSQL)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class DatabaseFileLost(sa.exc.SQLAlchemyError):
    """The SQLite file was deleted or replaced while the store had it open; the message says what to do."""


class Store:
    def __init__(self, url: str) -> None:
        self.url = engine_url(url)
        self.engine = sa.create_engine(self.url, pool_pre_ping=not self.url.startswith("sqlite"))
        self.write_engine = self.engine
        self._insert_statements: dict[int, str] = {}
        self.file = sqlite_file(url)  # None: in memory, or not SQLite
        self._file_identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file when first opened
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", sqlite_pragmas)
            if self.url.rstrip("/") not in ("sqlite:", "sqlite:/", "sqlite://"):
                self.write_engine = sa.create_engine(self.url)
                sa.event.listen(self.write_engine, "connect", sqlite_pragmas)
                sa.event.listen(self.write_engine, "connect", take_transactions)
                sa.event.listen(self.write_engine, "begin", begin_immediate)
        if self.file is not None:
            for engine in {self.engine, self.write_engine}:
                sa.event.listen(engine, "connect", self._remember_file)
            # First of the "begin" listeners: refused before BEGIN IMMEDIATE takes a lock.
            sa.event.listen(self.write_engine, "begin", self._refuse_a_lost_file, insert=True)

    def _remember_file(self, _dbapi_connection: Any, _record: Any) -> None:
        if self._file_identity is None:
            assert self.file is not None
            found = os.stat(self.file)
            self._file_identity = (found.st_dev, found.st_ino)

    def _refuse_a_lost_file(self, _conn: sa.Connection) -> None:
        # What a write to a deleted or replaced file holds is gone at the next start: refused, every writer
        # takes it as the database being away (the recorder keeps the records in its journal).
        problem = self.file_problem()
        if problem is not None:
            raise DatabaseFileLost(problem)

    def file_problem(self) -> str | None:
        """Why the SQLite file at the store's path is not the one it opened (deleted, or replaced); None if it is.

        Open connections keep using the file they opened, deleted or not, so what they write
        would be gone after a restart. One ``os.stat``: cheap enough for every ``/readyz`` and
        every batch. In-memory SQLite and PostgreSQL have no file, and no problem here.
        """
        if self.file is None or self._file_identity is None:
            return None
        advice = "Restart Tollgate: the journal keeps every record since, and the restart writes them to"
        try:
            found = os.stat(self.file)
        except FileNotFoundError:
            return f"the SQLite file {self.file} was deleted while Tollgate had it open. {advice} a new database there."
        except OSError:
            return None  # cannot tell; the database's own errors will say more
        if (found.st_dev, found.st_ino) != self._file_identity:
            return (
                f"the SQLite file {self.file} was replaced (or deleted and made again) while Tollgate had it "
                f"open, and Tollgate still writes to the old one. {advice} the file now there."
            )
        return None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_tables(self) -> None:
        """Upgrade the database to the newest schema revision; safe when several workers or instances start at once.

        A current database costs one SELECT; a new one gets every migration; one made by Tollgate 0.1.0
        is stamped as the baseline, then upgraded. Raises ``UpgradeRefused``, naming the database and
        what to do, when it cannot be upgraded (see ``proxy.recording.migrations``).
        """
        if self._at_head():
            return
        from proxy.recording.migrations.schema import upgrade_database  # loads alembic: only when behind

        upgrade_database(self)

    def _at_head(self) -> bool:
        try:
            with self.engine.connect() as conn:
                revisions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        except sa.exc.DBAPIError:
            return False  # no version table yet, or no database: the upgrade reads it properly and says which
        return revisions == [HEAD]

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.SQLAlchemyError as exc:
            logger.warning("database unreachable: %s", type(exc).__name__)
            return False

    def insert_records(
        self,
        records: Sequence[UsageRecord],
        after: Callable[[sa.Connection, set[str]], None] | None = None,
        *,
        rollup: bool = True,
    ) -> set[str]:
        """Write a batch, and add it to the rollups, in one transaction; returns the ids actually inserted.

        A request id already in the table is skipped, so writing a batch twice is
        harmless. ``after`` runs in the same transaction with the inserted ids.
        """
        inserted: set[str] = set()
        with self.write_engine.begin() as conn:
            # PostgreSQL's own $n placeholders, on a raw psycopg cursor: psycopg would otherwise split a
            # statement of thousands of %s placeholders in Python, holding the GIL, on every batch.
            raw = _raw_cursor(conn) if self.dialect == "postgresql" else None
            start = 0
            while start < len(records):
                # Few statement sizes, so that few prepared statements are kept (each holds memory).
                size = next(n for n in _STATEMENT_SIZES if n <= len(records) - start)
                chunk = records[start : start + size]
                start += size
                values = tuple(itertools.chain.from_iterable(map(self._row, chunk)))
                if raw is not None:
                    inserted.update(row[0] for row in _execute_raw(raw, self._insert_sql(size), values))
                else:
                    inserted.update(row[0] for row in conn.exec_driver_sql(self._insert_sql(size), values))
            if raw is not None:
                raw.close()
            # The rollups move with the rows, in the same transaction (imported here: rollups build on this module).
            from proxy.recording.rollups import apply_rollups

            if rollup:
                apply_rollups(conn, self.dialect, (r for r in records if r.request_id in inserted))
            if after is not None:
                after(conn, inserted)
        return inserted

    def _insert_sql(self, rows: int) -> str:
        # One statement for many rows: the driver releases and retakes the GIL once per statement
        # rather than once per row, and under load each retake waits for the event loop.
        sql = self._insert_statements.get(rows)
        if sql is None:
            width = len(_RECORD_FIELDS)
            if self.dialect == "sqlite":
                values = ", ".join("(" + ", ".join("?" * width) + ")" for _ in range(rows))
            else:
                values = ", ".join(
                    "(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")" for r in range(rows)
                )
            sql = (
                f"INSERT INTO usage_records ({', '.join(_RECORD_FIELDS)}) VALUES "
                + values
                + " ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
            )
            if len(self._insert_statements) < 64:
                self._insert_statements[rows] = sql
        return sql

    def _row(self, record: UsageRecord) -> tuple[Any, ...]:
        row: tuple[Any, ...] = _RECORD_VALUES(record)
        if self.dialect != "sqlite":
            return row
        # SQLite has no time type: write what SQLAlchemy's DateTime reads back (UTC, no offset).
        values = list(row)
        for i in _TIME_COLUMNS:
            values[i] = _sqlite_time(values[i])
        for i in _BOOL_COLUMNS:
            values[i] = int(values[i])
        return tuple(values)

    def count_records(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(USAGE_TABLE)).scalar_one())

    def dispose(self) -> None:
        self.engine.dispose()
        self.write_engine.dispose()
