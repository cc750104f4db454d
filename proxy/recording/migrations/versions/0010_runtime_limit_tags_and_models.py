"""Runtime limits with everything a [[limits]] entry has: tag, models, start_day, on_exceed, min_output_tokens

- ``runtime_limits.tag``: the tag a ``scope = "tag"`` limit counts (lower-cased), ``""`` for every other scope;
- ``runtime_limits.models``: the model globs it counts, a JSON array of distinct sorted strings, ``[]`` for
  every model;
- ``runtime_limits.start_day``, ``on_exceed``, ``min_output_tokens``: as in ``[[limits]]``;
- the primary key becomes (scope, tag, limit_id, window, models): two tag limits on different tags, or
  two limits on different models, are different limits (``proxy.limits.runtime``). ``tag`` is ``""``
  rather than NULL because a primary key column cannot be NULL;
- ``limit_changes.tag`` and ``limit_changes.models``: which limit a change was to, as above.

Every column added has a server default that means what the limits written before it meant (no tag,
every model, a month from the 1st, refuse, 256): existing rows keep every value they had. A downgrade
drops the runtime limits that name a tag or models, which the old primary key cannot tell apart.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_OLD_KEY = ("scope", "limit_id", "window")
_NEW_KEY = ("scope", "tag", "limit_id", "window", "models")
_PRIMARY_KEY = "runtime_limits_pkey"  # PostgreSQL's name for it; SQLite's has none


def _added() -> list[sa.Column[object]]:
    return [
        sa.Column("tag", sa.String(length=64), nullable=False, server_default=""),
        sa.Column("models", sa.String(length=1024), nullable=False, server_default="[]"),
        sa.Column("start_day", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("on_exceed", sa.String(length=8), nullable=False, server_default="refuse"),
        sa.Column("min_output_tokens", sa.Integer(), nullable=False, server_default="256"),
    ]


def _unkeyed(added: list[sa.Column[object]]) -> sa.Table:
    """``runtime_limits`` without its primary key, for SQLite's copy: batch mode keeps a reflected key's columns
    keyed, which would clash with the new key (SQLAlchemy warns), so the copy starts from no key at all."""
    return sa.Table(
        "runtime_limits",
        sa.MetaData(),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("limit_id", sa.String(length=256), nullable=False),
        sa.Column("window", sa.String(length=8), nullable=False),
        sa.Column("max_usd", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("alert_at", sa.String(length=256), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        *added,
    )


def _rekey(batch: BatchOperations, columns: tuple[str, ...]) -> None:
    if op.get_context().dialect.name == "postgresql":
        batch.drop_constraint(_PRIMARY_KEY, type_="primary")
    batch.create_primary_key(_PRIMARY_KEY, list(columns))


def upgrade() -> None:
    with op.batch_alter_table("runtime_limits", copy_from=_unkeyed([])) as batch:
        for column in _added():
            batch.add_column(column)
        _rekey(batch, _NEW_KEY)
    with op.batch_alter_table("limit_changes") as batch:
        batch.add_column(sa.Column("tag", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("models", sa.String(length=1024), nullable=False, server_default="[]"))


def downgrade() -> None:
    op.execute("DELETE FROM runtime_limits WHERE tag <> '' OR models <> '[]'")
    with op.batch_alter_table("limit_changes") as batch:
        batch.drop_column("models")
        batch.drop_column("tag")
    with op.batch_alter_table("runtime_limits", copy_from=_unkeyed(_added())) as batch:
        _rekey(batch, _OLD_KEY)
        for column in reversed(_added()):
            batch.drop_column(column.name)
