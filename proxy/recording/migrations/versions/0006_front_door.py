"""Which front door a row came through

- ``usage_records.front_door``: ``"proxy"`` for a request that came over HTTP, ``"inprocess"`` for one
  metered by ``proxy.inprocess`` inside the app. Existing rows are the proxy's: they get ``"proxy"``.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("front_door", sa.String(length=16), nullable=False, server_default="proxy"))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("front_door")
