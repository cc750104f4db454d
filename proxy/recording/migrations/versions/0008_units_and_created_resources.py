"""Units beyond tokens on each row, and the provider object a request created

- ``usage_records``: the units a request used besides tokens (``pricing.UnitCounts``: web searches and
  their context size, file-search calls, container sessions, server-tool requests, grounding queries,
  images with size and quality, image tokens, characters and milliseconds of audio, vector storage bytes),
  ``unit_cost_pico`` (their cost, part of ``cost_pico``) and ``unpriced_units`` (units used that had no
  price). Existing rows used none: counts get 0, the rest NULL.
- ``usage_records.resource_id``: the id of the object a request created at the provider (a vector store,
  from ``POST /v1/vector_stores``), so the daily storage job bills a store's storage to whoever created it.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COUNTS = (
    "web_search_calls",
    "file_search_calls",
    "container_sessions",
    "server_tool_requests",
    "grounding_queries",
    "images",
    "image_tokens_in",
    "image_tokens_out",
    "audio_characters",
    "audio_ms",
    "storage_bytes",
    "storage_free_bytes",
)
_LABELS = (("search_context_size", 8), ("image_size", 32), ("image_quality", 16))


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        for name in _COUNTS:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"))
        for name, length in _LABELS:
            batch.add_column(sa.Column(name, sa.String(length=length), nullable=True))
        batch.add_column(sa.Column("unit_cost_pico", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("unpriced_units", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("resource_id", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        for name in (
            "resource_id",
            "unpriced_units",
            "unit_cost_pico",
            *(n for n, _ in reversed(_LABELS)),
            *reversed(_COUNTS),
        ):
            batch.drop_column(name)
