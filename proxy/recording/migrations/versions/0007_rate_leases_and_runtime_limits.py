"""Rate-limit room held by each worker, spend limits set at run time, and the audit of their changes

- ``rate_leases``: room on a rate counter (requests or tokens in a minute, requests in flight) that one
  worker process holds, so that rate limits hold across workers and instances (``proxy.limits.rate_ledger``);
- ``runtime_limits``: spend limits set by ``tollgate limits set`` or ``PUT /admin/limits/...``; each beats
  a ``[[limits]]`` entry of the same scope, id and window;
- ``limit_changes``: every change to a runtime limit, with who made it, when, and the limit before and after.

All three start empty; no existing table changes.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_leases",
        sa.Column("counter_key", sa.String(length=600), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("counter_key", "holder"),
    )
    op.create_index(op.f("ix_rate_leases_expires_at"), "rate_leases", ["expires_at"], unique=False)
    op.create_table(
        "runtime_limits",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("limit_id", sa.String(length=256), nullable=False),
        sa.Column("window", sa.String(length=8), nullable=False),
        sa.Column("max_usd", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("alert_at", sa.String(length=256), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("scope", "limit_id", "window"),
    )
    op.create_table(
        "limit_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("limit_id", sa.String(length=256), nullable=False),
        sa.Column("window", sa.String(length=8), nullable=False),
        sa.Column("old", sa.String(), nullable=True),
        sa.Column("new", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_limit_changes_changed_at"), "limit_changes", ["changed_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_limit_changes_changed_at"), table_name="limit_changes")
    op.drop_table("limit_changes")
    op.drop_table("runtime_limits")
    op.drop_index(op.f("ix_rate_leases_expires_at"), table_name="rate_leases")
    op.drop_table("rate_leases")
