"""OpenAI's 12-hour cache writes, and background Responses waiting for their usage

- ``usage_records.cache_write_12h_tokens`` and ``invoice_lines.cache_write_12h_tokens``: OpenAI's
  12-hour cache writes, priced at their own rate (``cache_write_tokens`` keeps the short lifetimes).
  Existing rows get 0: no earlier Tollgate read them.
- ``background_responses``: where the two halves of a background Response meet, the create and the
  fetch that carries its usage (see ``proxy.recording.deferred``).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("usage_records", "invoice_lines"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("cache_write_12h_tokens", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_table(
        "background_responses",
        sa.Column("response_id", sa.String(length=128), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("provisional_pico", sa.BigInteger(), nullable=True),
        sa.Column("counter_keys", sa.String(), nullable=True),
        sa.Column("finished", sa.String(), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("response_id"),
    )


def downgrade() -> None:
    op.drop_table("background_responses")
    for table in ("invoice_lines", "usage_records"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("cache_write_12h_tokens")
