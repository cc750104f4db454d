"""The soak's database: made for one run, taken away for a while, read back, dropped.

PostgreSQL: a database of the soak's own on the server named by
``$TOLLGATE_TEST_POSTGRES_URL``, so that it can be made unavailable without
touching anyone else's: ``ALLOW_CONNECTIONS false`` and every backend terminated,
then given back (as ``tests/recording/test_journal.py`` does).

SQLite: a file in the run's folder. There is no server to take away, so another
connection holds ``BEGIN EXCLUSIVE`` for the outage; Tollgate's writers then wait
on SQLite's ``busy_timeout`` (10 s) rather than fail, so with SQLite a shorter
outage makes writes slow, not failed, and the journal is not replayed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa

from proxy.recording.store import engine_url
from proxy.recording.tables import COUNTERS_TABLE, USAGE_TABLE

logger = logging.getLogger("tests.bench.soak_database")


@dataclass(frozen=True, slots=True)
class Row:
    request_id: str
    user_id: str | None
    started_at: datetime
    status: int
    cost_pico: int | None
    error_type: str | None
    usage_source: str


class SoakDatabase(Protocol):
    url: str
    kind: str

    async def unavailable(self, seconds: float) -> None:
        """Make the database unusable for Tollgate for ``seconds``, then give it back."""
        ...

    def drop(self) -> None: ...


def read_back(url: str) -> tuple[list[Row], dict[str, int]]:
    """Every usage row, and every spend counter's ``spent_pico``."""
    engine = sa.create_engine(engine_url(url))
    u, c = USAGE_TABLE.c, COUNTERS_TABLE.c
    try:
        with engine.connect() as conn:
            query = sa.select(
                u.request_id, u.user_id, u.started_at, u.status, u.cost_pico, u.error_type, u.usage_source
            )
            rows = [Row(*r) for r in conn.execute(query)]
            counters = {k: int(v) for k, v in conn.execute(sa.select(c.counter_key, c.spent_pico))}
    finally:
        engine.dispose()
    # SQLite gives the times back naive; they are UTC.
    aware = [r if r.started_at.tzinfo else _with_utc(r) for r in rows]
    return aware, counters


def count_rows(url: str) -> int:
    engine = sa.create_engine(engine_url(url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(USAGE_TABLE)).scalar_one())
    except sa.exc.SQLAlchemyError:
        return -1  # not created yet, or briefly unreachable
    finally:
        engine.dispose()


def _with_utc(row: Row) -> Row:
    return Row(
        row.request_id,
        row.user_id,
        row.started_at.replace(tzinfo=UTC),
        row.status,
        row.cost_pico,
        row.error_type,
        row.usage_source,
    )


class SqliteDatabase:
    kind = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.path = folder / "soak.db"
        self.url = f"sqlite:///{self.path}"

    async def unavailable(self, seconds: float) -> None:
        await asyncio.to_thread(self._hold_exclusive, seconds)

    def _hold_exclusive(self, seconds: float) -> None:
        # timeout: wait for a write of Tollgate's in progress to end before taking the lock.
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            time.sleep(seconds)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    def drop(self) -> None:
        pass  # the file goes with the run's folder


class PostgresDatabase:
    kind = "postgres"

    def __init__(self, server_url: str) -> None:
        self.name = f"tollgate_soak_{uuid.uuid4().hex[:10]}"
        self._server = server_url.rsplit("/", 1)[0]
        self.url = f"{self._server}/{self.name}"
        self._admin = sa.create_engine(engine_url(server_url), isolation_level="AUTOCOMMIT")
        with self._admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {self.name}"))

    async def unavailable(self, seconds: float) -> None:
        await asyncio.to_thread(self._allow_connections, False)
        try:
            await asyncio.sleep(seconds)
        finally:
            await asyncio.to_thread(self._allow_connections, True)

    def _allow_connections(self, allowed: bool) -> None:
        with self._admin.connect() as conn:
            conn.execute(sa.text(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS {'true' if allowed else 'false'}"))
            if not allowed:
                conn.execute(
                    sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": self.name},
                )

    def drop(self) -> None:
        try:
            with self._admin.connect() as conn:
                conn.execute(sa.text(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true"))
                conn.execute(sa.text(f"DROP DATABASE {self.name} WITH (FORCE)"))
        finally:
            self._admin.dispose()
