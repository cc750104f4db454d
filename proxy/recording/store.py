"""The usage store: tables, the engine, and the statements that touch them.

SQLite (the embedded default, with a rollback journal: see ``_sqlite_pragmas``) and
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
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from proxy.recording.migrations import HEAD
from proxy.recording.records import MAX_LABEL_CHARS, MAX_TIER_CHARS, UsageRecord

logger = logging.getLogger("tollgate.store")
_STILL_WAL: set[str] = set()  # SQLite files said to be still in WAL mode, so that it is said once


class UsageRow(SQLModel, table=True):
    """One row per request Tollgate answered."""

    __tablename__ = "usage_records"

    request_id: str = Field(primary_key=True, max_length=64)
    started_at: datetime = Field(index=True, sa_type=sa.DateTime(timezone=True))
    ended_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    method: str = Field(max_length=16)
    endpoint: str = Field(max_length=MAX_LABEL_CHARS)
    provider: str | None = Field(default=None, max_length=128)
    model_requested: str | None = Field(default=None, max_length=MAX_LABEL_CHARS, index=True)
    model_served: str | None = Field(default=None, max_length=MAX_LABEL_CHARS)
    stream: bool = False
    status: int
    user_id: str | None = Field(default=None, max_length=MAX_LABEL_CHARS, index=True)
    team_id: str | None = Field(default=None, max_length=MAX_LABEL_CHARS, index=True)
    thread_id: str | None = Field(default=None, max_length=MAX_LABEL_CHARS)
    agent: str | None = Field(default=None, max_length=MAX_LABEL_CHARS)
    key_name: str | None = Field(default=None, max_length=256)
    tags: str | None = None
    # BIGINT: a provider may report more than 2**31 tokens (an INTEGER would fail the whole batch).
    input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cached_input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cache_write_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cache_write_1h_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    output_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    reasoning_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    audio_input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    audio_output_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    service_tier: str | None = Field(default=None, max_length=MAX_TIER_CHARS)
    cost_pico: int | None = Field(default=None, sa_type=sa.BigInteger)
    unpriced: bool = False
    usage_source: str = Field(max_length=16)
    latency_ms: float
    ttfb_ms: float | None = None
    error_type: str | None = Field(default=None, max_length=64)
    cache_write_12h_tokens: int = Field(default=0, sa_type=sa.BigInteger)


class SpendCounterRow(SQLModel, table=True):
    """Recorded spend of one subject in one window (see ``proxy.limits.rules.Counter``)."""

    __tablename__ = "spend_counters"

    counter_key: str = Field(primary_key=True, max_length=600)
    spent_pico: int = Field(default=0, sa_type=sa.BigInteger)


class BudgetLeaseRow(SQLModel, table=True):
    """Budget one worker process holds on a counter, to admit requests without a database round trip."""

    __tablename__ = "budget_leases"

    counter_key: str = Field(primary_key=True, max_length=600)
    holder: str = Field(primary_key=True, max_length=64)
    amount_pico: int = Field(default=0, sa_type=sa.BigInteger)
    expires_at: float = Field(index=True)


class AlertSentRow(SQLModel, table=True):
    """An alert already sent: at most one per counter, limit and threshold, across every worker."""

    __tablename__ = "alerts_sent"

    counter_key: str = Field(primary_key=True, max_length=600)
    limit_pico: int = Field(primary_key=True, sa_type=sa.BigInteger)
    threshold: str = Field(primary_key=True, max_length=16)
    sent_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class UsageRollupRow(SQLModel, table=True):
    """Daily and monthly totals per user, team, agent, model and provider, kept by the recorder.

    Written in the same transaction as the raw rows, so the two never disagree. Missing
    attribution is stored as "" (primary key columns cannot be NULL).
    """

    __tablename__ = "usage_rollups"

    period: str = Field(primary_key=True, max_length=8)  # "day" or "month"
    period_start: str = Field(primary_key=True, max_length=10)  # "2026-11-25" or "2026-11" (UTC)
    user_id: str = Field(primary_key=True, max_length=MAX_LABEL_CHARS, default="")
    team_id: str = Field(primary_key=True, max_length=MAX_LABEL_CHARS, default="")
    agent: str = Field(primary_key=True, max_length=MAX_LABEL_CHARS, default="")
    model: str = Field(primary_key=True, max_length=MAX_LABEL_CHARS, default="")
    provider: str = Field(primary_key=True, max_length=128, default="")
    requests: int = Field(default=0, sa_type=sa.BigInteger)
    input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cached_input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cache_write_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    output_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    reasoning_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    audio_input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    audio_output_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cost_pico: int = Field(default=0, sa_type=sa.BigInteger)
    unpriced_requests: int = Field(default=0, sa_type=sa.BigInteger)


class BackgroundResponseRow(SQLModel, table=True):
    """A background Response whose usage comes later: the create's half, the finished half, or both.

    See ``proxy.recording.deferred``: once both halves are in, the usage row is completed and this one marked
    ``completed``, so that a later fetch of the same response changes nothing.
    """

    __tablename__ = "background_responses"

    response_id: str = Field(primary_key=True, max_length=128)
    request_id: str | None = Field(default=None, max_length=64)
    provisional_pico: int | None = Field(default=None, sa_type=sa.BigInteger)
    counter_keys: str | None = None  # JSON list of the spend counters charged provisionally
    finished: str | None = None  # JSON of the finished response's priced usage
    completed: bool = False


USAGE_TABLE: sa.Table = UsageRow.__table__  # type: ignore[attr-defined]
BACKGROUND_TABLE: sa.Table = BackgroundResponseRow.__table__  # type: ignore[attr-defined]
ROLLUPS_TABLE: sa.Table = UsageRollupRow.__table__  # type: ignore[attr-defined]
COUNTERS_TABLE: sa.Table = SpendCounterRow.__table__  # type: ignore[attr-defined]
LEASES_TABLE: sa.Table = BudgetLeaseRow.__table__  # type: ignore[attr-defined]
ALERTS_TABLE: sa.Table = AlertSentRow.__table__  # type: ignore[attr-defined]
_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(UsageRecord))
_RECORD_VALUES = operator.attrgetter(*_RECORD_FIELDS)  # a record's column values as one tuple, built in C
_TIME_COLUMNS = tuple(i for i, f in enumerate(dataclasses.fields(UsageRecord)) if f.type == "datetime")
# Rows per INSERT statement; 500 rows of 31 values stay under SQLite's 32,766 bound parameters.
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


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names, made absolute; None for PostgreSQL, in-memory SQLite and URI filenames."""
    parsed = sa.engine.make_url(engine_url(url))
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).absolute()


def _sqlite_take_transactions(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event decide how transactions start (pysqlite would start them itself).
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(conn: sa.Connection) -> None:
    # A write transaction takes the write lock when it starts, so a read-then-write (a budget lease)
    # cannot interleave with another process's write; busy_timeout makes the others wait.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
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
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            if self.url.rstrip("/") not in ("sqlite:", "sqlite:/", "sqlite://"):
                self.write_engine = sa.create_engine(self.url)
                sa.event.listen(self.write_engine, "connect", _sqlite_pragmas)
                sa.event.listen(self.write_engine, "connect", _sqlite_take_transactions)
                sa.event.listen(self.write_engine, "begin", _sqlite_begin_immediate)
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
        return tuple(values)

    def count_records(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(USAGE_TABLE)).scalar_one())

    def dispose(self) -> None:
        self.engine.dispose()
        self.write_engine.dispose()


class InvoiceRow(SQLModel, table=True):
    """One invoice per billing entity (a user or a team) and calendar month; see ``proxy.billing.queries``.

    Money columns are decimal strings (exact, in the invoice's currency, already rounded),
    except ``cost_usd``: the exact unrounded usage cost it was built from. The unique
    constraint is what makes generation safe when several instances run it at once.
    """

    __tablename__ = "invoices"
    __table_args__ = (sa.UniqueConstraint("entity_type", "entity_id", "period", name="uq_invoices_entity_period"),)

    id: str = Field(primary_key=True, max_length=128)
    entity_type: str = Field(max_length=8)  # "user" or "team"
    entity_id: str = Field(max_length=256)
    period: str = Field(max_length=7, index=True)  # "2026-11" (UTC calendar month)
    currency: str = Field(max_length=8)
    cost_usd: str = Field(max_length=64)
    exchange_rate: str = Field(max_length=64)
    subtotal: str = Field(max_length=64)
    markup_percent: str = Field(max_length=64)
    markup: str = Field(max_length=64)
    total: str = Field(max_length=64)
    requests: int = Field(default=0, sa_type=sa.BigInteger)
    unpriced_requests: int = Field(default=0, sa_type=sa.BigInteger)
    status: str = Field(max_length=16)  # pending, paid, failed or void
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class InvoiceLineRow(SQLModel, table=True):
    """One line of an invoice: usage of one model ("model" lines, which the total adds up) or one agent."""

    __tablename__ = "invoice_lines"

    invoice_id: str = Field(primary_key=True, max_length=128, foreign_key="invoices.id")
    kind: str = Field(primary_key=True, max_length=8)  # "model" or "agent"
    key: str = Field(primary_key=True, max_length=256)  # the model or agent name; "" when unknown
    requests: int = Field(default=0, sa_type=sa.BigInteger)
    unpriced_requests: int = Field(default=0, sa_type=sa.BigInteger)
    input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cached_input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cache_write_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cache_write_1h_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cache_write_12h_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    output_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    reasoning_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    audio_input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    audio_output_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cost_usd: str = Field(max_length=64)
    amount: str = Field(max_length=64)
    unit_prices: str | None = None  # JSON: USD per million tokens by kind, for model lines with a price card


INVOICES_TABLE: sa.Table = InvoiceRow.__table__  # type: ignore[attr-defined]
INVOICE_LINES_TABLE: sa.Table = InvoiceLineRow.__table__  # type: ignore[attr-defined]
