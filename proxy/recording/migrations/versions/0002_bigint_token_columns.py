"""Token counts of usage_records as BIGINT

A provider reporting 3e9 tokens overflowed PostgreSQL's INTEGER and failed the whole batch it was in.

PostgreSQL: one ALTER TABLE for the eight columns, so that the table is rewritten once rather than
eight times. It holds an exclusive lock on usage_records while it rewrites: on a large table, expect
the first start after the upgrade to take a while (and run ``tollgate db upgrade`` at a quiet time).

SQLite: nothing to do. Its INTEGER columns already hold any 64-bit integer (a column's type is only an
affinity there, and INTEGER and BIGINT are the same one), and rebuilding the table to rename the type
would copy every row. The migration test's type comparison treats the two as equal on SQLite for this
reason (``proxy.recording.migrations.schema.compare_type``).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TOKEN_COUNTS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
)


def _alter(type_: str) -> None:
    if op.get_context().dialect.name == "sqlite":
        return  # see the docstring: SQLite's INTEGER is already 64-bit
    op.execute("ALTER TABLE usage_records " + ", ".join(f"ALTER COLUMN {name} TYPE {type_}" for name in _TOKEN_COUNTS))


def upgrade() -> None:
    _alter("BIGINT")


def downgrade() -> None:
    _alter("INTEGER")  # fails, changing nothing, if a count no longer fits
