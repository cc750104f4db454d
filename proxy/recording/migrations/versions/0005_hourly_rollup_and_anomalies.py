"""An hourly rollup, per-minute thread counts, and the anomalies already alerted

- ``usage_hourly``: spend, tokens and requests per UTC hour of each user, team, agent and thread, the
  history anomaly detection compares the last hour with (``proxy.insight.anomalies``);
- ``thread_minutes``: requests and tokens per UTC minute of each thread, which catch a runaway loop;
- ``anomalies``: one row per anomaly alerted (kind, entity, window), the once-only claim across workers.

The first two start empty: they fill from the rows written after the upgrade (``tollgate rollups rebuild``
fills them from the raw rows of the last weeks too).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_hourly",
        sa.Column("hour", sa.String(length=13), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("entity_id", sa.String(length=256), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_pico", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "scope", "entity_id"),
    )
    op.create_table(
        "thread_minutes",
        sa.Column("minute", sa.String(length=16), nullable=False),
        sa.Column("thread_id", sa.String(length=256), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_pico", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("minute", "thread_id"),
    )
    op.create_table(
        "anomalies",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("entity_id", sa.String(length=256), nullable=False),
        sa.Column("window", sa.String(length=32), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("observed_pico", sa.BigInteger(), nullable=False),
        sa.Column("baseline_pico", sa.BigInteger(), nullable=True),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "scope", "entity_id", "window"),
    )
    op.create_index(op.f("ix_anomalies_detected_at"), "anomalies", ["detected_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_anomalies_detected_at"), table_name="anomalies")
    op.drop_table("anomalies")
    op.drop_table("thread_minutes")
    op.drop_table("usage_hourly")
