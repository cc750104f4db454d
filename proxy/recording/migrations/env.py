"""Alembic's environment: run the migrations on the connection Tollgate hands over.

Tollgate (``proxy.recording.migrations.schema``) passes its connection, already in a transaction that holds
the upgrade lock, as ``config.attributes["connection"]``; the migrations run inside that transaction.
A maintainer's ``alembic`` command (run from the repository root, configured by ``[tool.alembic]``
in pyproject.toml) has no connection: it connects to ``[database] url`` of the Tollgate config
(``$TOLLGATE_CONFIG``, ``$TOLLGATE_DATABASE_URL``). ``--sql`` prints the SQL instead.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from proxy.recording.migrations.schema import CONTEXT_OPTIONS
from proxy.recording.store import engine_url


def run_on(connection: sa.Connection) -> None:
    context.configure(connection=connection, **CONTEXT_OPTIONS)
    with context.begin_transaction():  # no new transaction when Tollgate's is already open
        context.run_migrations()


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    from proxy.config import load_config

    url = engine_url(load_config(os.environ.get("TOLLGATE_CONFIG")).database.url)
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **CONTEXT_OPTIONS)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            run_on(connection)
    finally:
        engine.dispose()


run()
