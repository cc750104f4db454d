"""Price history, provider-reported costs and customer price books

- ``price_versions``: each imported price version (``tollgate prices import``), in force from its date;
- ``usage_records.price_version``: the imported version that priced a row (NULL: the config's catalog,
  which is what priced every row written before this revision);
- ``usage_records.provider_cost_pico``: the cost a provider reported (``cost_source = "provider"``);
- ``reprice_audit``: one entry per applied ``tollgate reprice``;
- ``invoices.price_book``: the customer price book an invoice's amounts come from (NULL: at cost);
- ``invoices.revision`` and ``invoices.corrects``: a corrected invoice is a new one (revision 1, 2, ...)
  naming the one it corrects; one invoice per entity, period and revision (existing ones are revision 0).

Every column added is nullable or has a default: existing rows keep every value they had.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "price_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("effective_at", _TIME, nullable=False),
        sa.Column("imported_at", _TIME, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=512), nullable=False),
        sa.Column("models", sa.Integer(), nullable=False),
        sa.Column("entries", sa.String(), nullable=False),
    )
    op.create_table(
        "reprice_audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("applied_at", _TIME, nullable=False),
        sa.Column("since", _TIME, nullable=False),
        sa.Column("until", _TIME, nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("rows_changed", sa.BigInteger(), nullable=False),
        sa.Column("before_pico", sa.BigInteger(), nullable=False),
        sa.Column("after_pico", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
    )
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("price_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("provider_cost_pico", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("invoices") as batch:
        batch.add_column(sa.Column("price_book", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("corrects", sa.String(length=128), nullable=True))
        batch.drop_constraint("uq_invoices_entity_period", type_="unique")
        batch.create_unique_constraint(
            "uq_invoices_entity_period_revision", ["entity_type", "entity_id", "period", "revision"]
        )


def downgrade() -> None:
    with op.batch_alter_table("invoices") as batch:
        batch.drop_constraint("uq_invoices_entity_period_revision", type_="unique")
        batch.create_unique_constraint("uq_invoices_entity_period", ["entity_type", "entity_id", "period"])
        batch.drop_column("corrects")
        batch.drop_column("revision")
        batch.drop_column("price_book")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("provider_cost_pico")
        batch.drop_column("price_version")
    op.drop_table("reprice_audit")
    op.drop_table("price_versions")
