"""Tollgate's schema migrations: alembic's own layout, inside the package so an installed wheel can upgrade.

- ``env.py`` runs the migrations on the connection ``proxy.recording.migrations.schema`` hands it (or, for a
  maintainer's ``alembic`` command, on ``[database] url`` of the Tollgate config);
- ``versions/NNNN_*.py`` are the revisions, numbered; ``0001`` is the schema of the released 0.1.0;
- ``script.py.mako`` is the template ``alembic revision`` fills in.

``Store.create_tables`` reads the revision with one SELECT and compares it with ``HEAD``: a current
database costs no alembic import at start. Only when it is behind (or new, or made by 0.1.0 before
migrations) does ``proxy.recording.migrations.schema`` load alembic and the scripts. A test checks that ``HEAD``
is the newest script, so a new migration cannot be forgotten here.

This module imports nothing heavy: the server imports it on every start.
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa

__all__ = ["BASELINE", "HEAD", "SCRIPT_LOCATION", "UpgradeRefused", "database_name"]

BASELINE = "0001"
HEAD = "0010"
SCRIPT_LOCATION = str(Path(__file__).parent)

# alembic logs at INFO on every use (its plugins, its "context impl", each step); Tollgate logs what an
# upgrade does itself, in two lines (proxy.recording.migrations.schema). A level the operator sets wins.
for _logger in ("alembic.runtime.plugins", "alembic.runtime.migration"):
    if logging.getLogger(_logger).level == logging.NOTSET:
        logging.getLogger(_logger).setLevel(logging.WARNING)


class UpgradeRefused(Exception):
    """The database cannot be brought to ``HEAD``; the message names it and says what to do."""


def database_name(url: str | sa.URL) -> str:
    """The database URL as an operator wrote it, to show them: never with its password."""
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql+psycopg":  # the driver Tollgate picks (proxy.recording.store.engine_url)
        parsed = parsed.set(drivername="postgresql")
    return parsed.render_as_string(hide_password=True)
