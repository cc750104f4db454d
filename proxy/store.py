"""The usage store: tables, the engine, and the statements that touch them.

SQLite (the embedded default, in WAL mode) and PostgreSQL (for fleets) run the
same code. Handlers never build queries; they go through ``Store``.

Money is stored as integer picodollars (10**12 per USD) so that sums in SQL
are exact on both engines; ``pricing.pico_to_usd`` turns them back into
``Decimal`` dollars.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from proxy.records import UsageRecord

logger = logging.getLogger("tollgate.store")


class UsageRow(SQLModel, table=True):
    """One row per request Tollgate answered."""

    __tablename__ = "usage_records"

    request_id: str = Field(primary_key=True, max_length=64)
    started_at: datetime = Field(index=True, sa_type=sa.DateTime(timezone=True))
    ended_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    method: str = Field(max_length=16)
    endpoint: str = Field(max_length=256)
    provider: str | None = Field(default=None, max_length=128)
    model_requested: str | None = Field(default=None, max_length=256, index=True)
    model_served: str | None = Field(default=None, max_length=256)
    stream: bool = False
    status: int
    user_id: str | None = Field(default=None, max_length=256, index=True)
    team_id: str | None = Field(default=None, max_length=256, index=True)
    thread_id: str | None = Field(default=None, max_length=256)
    agent: str | None = Field(default=None, max_length=256)
    key_name: str | None = Field(default=None, max_length=256)
    tags: str | None = None
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    service_tier: str | None = Field(default=None, max_length=32)
    cost_pico: int | None = Field(default=None, sa_type=sa.BigInteger)
    unpriced: bool = False
    usage_source: str = Field(max_length=16)
    latency_ms: float
    ttfb_ms: float | None = None
    error_type: str | None = Field(default=None, max_length=64)


USAGE_TABLE: sa.Table = UsageRow.__table__  # type: ignore[attr-defined]
_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(UsageRecord))


def engine_url(url: str) -> str:
    """Normalise a user's database URL to the driver Tollgate ships (psycopg 3 for PostgreSQL)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (reports, /readyz) run while the recorder writes; several workers share the file.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Store:
    def __init__(self, url: str) -> None:
        self.url = engine_url(url)
        self.engine = sa.create_engine(self.url, pool_pre_ping=not self.url.startswith("sqlite"))
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_tables(self) -> None:
        SQLModel.metadata.create_all(self.engine)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.SQLAlchemyError as exc:
            logger.warning("database unreachable: %s", type(exc).__name__)
            return False

    def insert_records(self, records: Sequence[UsageRecord]) -> None:
        """Write a batch in one transaction (one executemany)."""
        rows = [{name: getattr(r, name) for name in _RECORD_FIELDS} for r in records]
        with self.engine.begin() as conn:
            conn.execute(USAGE_TABLE.insert(), rows)

    def count_records(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(USAGE_TABLE)).scalar_one())

    def dispose(self) -> None:
        self.engine.dispose()
