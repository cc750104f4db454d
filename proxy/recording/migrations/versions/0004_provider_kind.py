"""Each row's provider kind, and the provider's own usage object

- ``usage_records.provider_kind``: the API the provider speaks (openai, anthropic, gemini or azure).
  Rows from before it were all OpenAI's API, the only one earlier Tollgates forwarded: they get "openai".
- ``usage_records.provider_usage``: the usage object as the provider reported it, as JSON text (NULL
  where none was reported, and on rows from before it).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("provider_kind", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("provider_usage", sa.String(), nullable=True))
    op.execute("UPDATE usage_records SET provider_kind = 'openai' WHERE provider IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("provider_usage")
        batch.drop_column("provider_kind")
