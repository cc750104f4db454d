"""Helpers for the migration tests: a database as the released Tollgate made it, and a schema as data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from proxy.store import engine_url

HERE = Path(__file__).parent


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
