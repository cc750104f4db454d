"""Helpers for the migration tests: a database as the released Tollgate made it, and a schema as data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from proxy.recording.store import Store, engine_url

HERE = Path(__file__).parent


@pytest.fixture
def make_store() -> Iterator[Callable[[str], Store]]:
    """``Store(url)``, disposed of after the test (its pooled connections closed)."""
    made: list[Store] = []

    def make(url: str) -> Store:
        made.append(Store(url))
        return made[-1]

    yield make
    for store in made:
        store.dispose()


def create_released_schema(url: str) -> None:
    """Make the tables the released Tollgate made (frozen in ``released_schema_<engine>.sql``)."""
    engine = sa.create_engine(engine_url(url))
    try:
        ddl = (HERE / f"released_schema_{engine.dialect.name}.sql").read_text()
        code = "\n".join(line for line in ddl.splitlines() if not line.startswith("--"))
        with engine.begin() as conn:
            for statement in code.split(";\n"):
                if statement.strip():
                    conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def describe_schema(url: str) -> dict[str, Any]:
    """Every table's columns (name, type, nullable, default), keys, indexes and constraints, as plain data."""
    engine = sa.create_engine(engine_url(url))
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            return {
                table: {
                    "columns": [
                        (c["name"], str(c["type"].compile(conn.dialect)), c["nullable"], c["default"])
                        for c in inspector.get_columns(table)
                    ],
                    "primary_key": inspector.get_pk_constraint(table),
                    "indexes": sorted(
                        (i["name"], tuple(i["column_names"]), i["unique"]) for i in inspector.get_indexes(table)
                    ),
                    "unique": sorted(
                        (u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)
                    ),
                    "foreign_keys": sorted(
                        (f["name"], tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                        for f in inspector.get_foreign_keys(table)
                    ),
                }
                for table in sorted(inspector.get_table_names())
                if table != "alembic_version"
            }
    finally:
        engine.dispose()


def _time(text: str, dialect: str) -> str:
    # As 0.1.0 wrote times: SQLite has no time type (UTC text, no offset); PostgreSQL takes an offset.
    return text if dialect == "sqlite" else text + "+00:00"


def released_rows(dialect: str) -> dict[str, list[dict[str, Any]]]:
    """Rows for every table of 0.1.0, with NULLs, extremes and non-ASCII text where a column allows them."""
    tokens = ("input", "cached_input", "cache_write", "cache_write_1h", "output", "reasoning", "audio_input")
    usage = {
        "request_id": "r1",
        "started_at": _time("2026-11-30 23:59:59.123456", dialect),
        "ended_at": _time("2026-12-01 00:00:01.000001", dialect),
        "method": "POST",
        "endpoint": "/v1/chat/completions",
        "provider": "openai",
        "model_requested": "gpt-4o",
        "model_served": "gpt-4o-2024-08-06",
        "stream": True,
        "status": 200,
        "user_id": "zoë",
        "team_id": "research",
        "thread_id": "conv-42",
        "agent": "planner",
        "key_name": "ci",
        "tags": '{"env": "prod"}',
        **{f"{name}_tokens": 10 + i for i, name in enumerate(tokens)},
        "audio_output_tokens": 2**31 - 1,  # the largest INTEGER: it must survive the change to BIGINT
        "service_tier": "flex",
        "cost_pico": 2**62,
        "unpriced": False,
        "usage_source": "reported",
        "latency_ms": 12.5,
        "ttfb_ms": 10.25,
        "error_type": None,
    }
    bare: dict[str, Any] = {
        name: None for name in ("provider", "model_requested", "model_served", "user_id", "team_id")
    }
    bare |= {name: None for name in ("thread_id", "agent", "key_name", "tags", "service_tier", "cost_pico", "ttfb_ms")}
    bare |= {"request_id": "r2", "stream": False, "status": 502, "unpriced": True, "error_type": "upstream_timeout"}
    invoice = {
        "id": "inv-2026-11-user-zoë",
        "entity_type": "user",
        "entity_id": "zoë",
        "period": "2026-11",
        "currency": "EUR",
        "cost_usd": "0.000000123456",
        "exchange_rate": "0.92",
        "subtotal": "0.00",
        "markup_percent": "10",
        "markup": "0.00",
        "total": "0.00",
        "requests": 2,
        "unpriced_requests": 1,
        "status": "pending",
        "created_at": _time("2026-12-02 00:00:00.000000", dialect),
        "updated_at": _time("2026-12-02 00:00:00.500000", dialect),
    }
    line: dict[str, Any] = {
        "invoice_id": invoice["id"],
        "kind": "model",
        "key": "gpt-4o",
        "requests": 2,
        "unpriced_requests": 1,
    }
    line |= {f"{name}_tokens": 2**40 + i for i, name in enumerate((*tokens, "audio_output"))}
    line |= {"cost_usd": "0.000000123456", "amount": "0.00", "unit_prices": '{"input": "2.5"}'}
    rollup: dict[str, Any] = {
        "period": "day",
        "period_start": "2026-11-30",
        "user_id": "zoë",
        "team_id": "",
        "agent": "planner",
    }
    rollup |= {"model": "gpt-4o", "provider": "openai", "requests": 2, "cost_pico": 2**62, "unpriced_requests": 1}
    rollup |= {f"{name}_tokens": 2**33 + i for i, name in enumerate(tokens) if name != "cache_write_1h"}
    rollup |= {"audio_output_tokens": 0}
    return {
        "usage_records": [usage, usage | bare],
        "spend_counters": [
            {"counter_key": "user:zoë:day:2026-11-30", "spent_pico": 2**62},
            {"counter_key": "global:*:total", "spent_pico": 0},
        ],
        "budget_leases": [
            {"counter_key": "global:*:total", "holder": "host-1-abcd", "amount_pico": 5, "expires_at": 1.5}
        ],
        "alerts_sent": [
            {
                "counter_key": "user:zoë:day:2026-11-30",
                "limit_pico": 10**12,
                "threshold": "0.8",
                "sent_at": _time("2026-11-30 12:00:00.000000", dialect),
            }
        ],
        "usage_rollups": [rollup, rollup | {"period": "month", "period_start": "2026-11"}],
        "invoices": [invoice],
        "invoice_lines": [line, line | {"kind": "agent", "key": "", "unit_prices": None}],
    }


def insert_rows(url: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Insert ``rows`` with plain SQL, as the released code's tables take them (no models involved)."""
    engine = sa.create_engine(engine_url(url))
    try:
        quote = engine.dialect.identifier_preparer.quote  # "window" is a reserved word on PostgreSQL
        with engine.begin() as conn:
            for table, table_rows in rows.items():
                for row in table_rows:
                    names = ", ".join(quote(name) for name in row)
                    values = ", ".join(f":{name}" for name in row)
                    conn.execute(sa.text(f"INSERT INTO {table} ({names}) VALUES ({values})"), row)
    finally:
        engine.dispose()


def read_rows(url: str, tables: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every row of each table with plain SQL, in primary key order, as column -> value."""
    engine = sa.create_engine(engine_url(url))
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            quote = engine.dialect.identifier_preparer.quote
            out = {}
            for table in tables:
                order = ", ".join(quote(name) for name in inspector.get_pk_constraint(table)["constrained_columns"])
                query = sa.text(f"SELECT * FROM {table} ORDER BY {order}")
                out[table] = [dict(r._mapping) for r in conn.execute(query)]
            return out
    finally:
        engine.dispose()


def kept(before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]]) -> dict[str, list[Any]]:
    """``after`` reduced to the columns ``before`` had: later migrations may add columns, never lose values."""
    return {
        table: [{column: row[column] for column in old} for row, old in zip(after[table], rows, strict=False)]
        + after[table][len(rows) :]
        for table, rows in before.items()
    }
