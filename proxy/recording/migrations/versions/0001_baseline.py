"""Baseline: the schema of Tollgate 0.1.0

The tables as ``SQLModel.metadata.create_all`` made them before there were migrations. A database
made by 0.1.0 (these tables, no ``alembic_version``) is stamped with this revision rather than
migrated (see ``proxy.recording.migrations.schema``). Written out in full, not read from the models, so that it
stays this schema as the models change; tests compare it with the frozen DDL of 0.1.0.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_LABEL = sa.String(length=256)  # proxy.recording.records.MAX_LABEL_CHARS at 0.1.0
_TIME = sa.DateTime(timezone=True)
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
_ROLLUP_TOKEN_COUNTS = tuple(name for name in _TOKEN_COUNTS if name != "cache_write_1h_tokens")


def upgrade() -> None:
    op.create_table(
        "alerts_sent",
        sa.Column("counter_key", sa.String(length=600), nullable=False),
        sa.Column("limit_pico", sa.BigInteger(), nullable=False),
        sa.Column("threshold", sa.String(length=16), nullable=False),
        sa.Column("sent_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("counter_key", "limit_pico", "threshold"),
    )
    op.create_table(
        "budget_leases",
        sa.Column("counter_key", sa.String(length=600), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("amount_pico", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("counter_key", "holder"),
    )
    op.create_index("ix_budget_leases_expires_at", "budget_leases", ["expires_at"])
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("entity_type", sa.String(length=8), nullable=False),
        sa.Column("entity_id", sa.String(length=256), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        *(
            sa.Column(name, sa.String(length=64), nullable=False)
            for name in ("cost_usd", "exchange_rate", "subtotal", "markup_percent", "markup", "total")
        ),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("unpriced_requests", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("entity_type", "entity_id", "period", name="uq_invoices_entity_period"),
    )
    op.create_index("ix_invoices_period", "invoices", ["period"])
    op.create_table(
        "spend_counters",
        sa.Column("counter_key", sa.String(length=600), nullable=False),
        sa.Column("spent_pico", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("counter_key"),
    )
    op.create_table(
        "usage_records",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("ended_at", _TIME, nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("endpoint", _LABEL, nullable=False),
        sa.Column("provider", sa.String(length=128), nullable=True),
        sa.Column("model_requested", _LABEL, nullable=True),
        sa.Column("model_served", _LABEL, nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        *(sa.Column(name, _LABEL, nullable=True) for name in ("user_id", "team_id", "thread_id", "agent")),
        sa.Column("key_name", sa.String(length=256), nullable=True),
        sa.Column("tags", sa.String(), nullable=True),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _TOKEN_COUNTS),
        sa.Column("service_tier", sa.String(length=32), nullable=True),
        sa.Column("cost_pico", sa.BigInteger(), nullable=True),
        sa.Column("unpriced", sa.Boolean(), nullable=False),
        sa.Column("usage_source", sa.String(length=16), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttfb_ms", sa.Float(), nullable=True),
        sa.Column("error_type", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
    )
    for column in ("model_requested", "started_at", "team_id", "user_id"):
        op.create_index(f"ix_usage_records_{column}", "usage_records", [column])
    op.create_table(
        "usage_rollups",
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("period_start", sa.String(length=10), nullable=False),
        *(sa.Column(name, _LABEL, nullable=False) for name in ("user_id", "team_id", "agent", "model")),
        sa.Column("provider", sa.String(length=128), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _ROLLUP_TOKEN_COUNTS),
        sa.Column("cost_pico", sa.BigInteger(), nullable=False),
        sa.Column("unpriced_requests", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("period", "period_start", "user_id", "team_id", "agent", "model", "provider"),
    )
    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("unpriced_requests", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _TOKEN_COUNTS),
        sa.Column("cost_usd", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.String(length=64), nullable=False),
        sa.Column("unit_prices", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
        sa.PrimaryKeyConstraint("invoice_id", "kind", "key"),
    )


def downgrade() -> None:
    for table in (
        "invoice_lines",
        "usage_rollups",
        "usage_records",
        "spend_counters",
        "invoices",
        "budget_leases",
        "alerts_sent",
    ):
        op.drop_table(table)
