"""Read a database's schema revision and bring it to ``HEAD``, under a lock; alembic is loaded only here.

The upgrade runs in one transaction that first takes the upgrade lock: on PostgreSQL an advisory
transaction lock, on SQLite the write lock (``Store.write_engine`` starts ``BEGIN IMMEDIATE``; the
others wait for it up to ``busy_timeout``). Whoever comes second reads the revision again under the
lock, finds it current, and does nothing. PostgreSQL and SQLite both roll DDL back, so a failed
upgrade leaves the database at the revision it had.

A database with Tollgate's 0.1.0 tables and no ``alembic_version`` was made before migrations: it is
stamped ``BASELINE`` (its schema is that revision), then upgraded like any other.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from typing import Any, Literal

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from proxy.recording.migrations import BASELINE, HEAD, SCRIPT_LOCATION, UpgradeRefused, database_name
from proxy.recording.store import Store

logger = logging.getLogger("tollgate.migrations")

# Held by whoever creates or alters Tollgate's tables (also before migrations, by 0.1.0's create_tables).
_LOCK_KEY = 7240125
# The tables 0.1.0 created; with no alembic_version they mean "at BASELINE".
BASELINE_TABLES = frozenset(
    {"usage_records", "spend_counters", "budget_leases", "alerts_sent", "usage_rollups", "invoices", "invoice_lines"}
)


@dataclasses.dataclass(frozen=True)
class Revision:
    id: str
    description: str  # the first line of the migration's docstring

    def __str__(self) -> str:
        return f"{self.id} ({self.description})"


@dataclasses.dataclass(frozen=True)
class Upgrade:
    """What an upgrade did: the revision found (None for a new database, or one 0.1.0 made) and the one left."""

    before: str | None
    after: str
    stamped: bool  # the database was made by 0.1.0, before migrations, and stamped BASELINE first


def compare_type(
    context: MigrationContext,
    inspected_column: sa.Column[Any],
    metadata_column: sa.Column[Any],
    inspected_type: sa.types.TypeEngine[Any],
    metadata_type: sa.types.TypeEngine[Any],
) -> bool | None:
    """SQLite stores INTEGER and BIGINT alike (64-bit): no difference to migrate. Else alembic's own rule."""
    if context.dialect.name == "sqlite" and isinstance(inspected_type, sa.Integer):
        return not isinstance(metadata_type, sa.Integer)
    return None


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write SQLModel's string type as plain ``sa.String``, so that migrations do not import sqlmodel."""
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length is not None else "sa.String()"
    return False


# What env.py configures alembic with, and what the test that models and migrations agree compares with.
CONTEXT_OPTIONS: dict[str, Any] = {
    "target_metadata": SQLModel.metadata,
    "compare_type": compare_type,
    "render_item": render_item,
    # SQLite alters a table by copying it: autogenerate writes batch operations, which do so there.
    "render_as_batch": True,
}


def alembic_config(conn: sa.Connection) -> Config:
    """alembic's configuration, made in code (no alembic.ini), to run its commands on ``conn``."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = conn
    return config


@functools.cache
def scripts() -> ScriptDirectory:
    """The migration scripts, loaded once."""
    return ScriptDirectory(SCRIPT_LOCATION)


def describe(revision: str) -> Revision:
    script = scripts().get_revision(revision)
    assert script is not None
    return Revision(revision, script.doc.splitlines()[0].rstrip(".") if script.doc else "")


def pending(revision: str | None) -> list[Revision]:
    """The migrations that lead from ``revision`` (None: an empty database) to ``HEAD``, oldest first."""
    return [describe(s.revision) for s in reversed(list(scripts().iterate_revisions(HEAD, revision or "base")))]


def read_revision(conn: sa.Connection) -> str | None:
    """The database's revision, None when it has no ``alembic_version``; refused when alembic cannot tell."""
    heads = MigrationContext.configure(conn).get_current_heads()
    if len(heads) > 1:
        raise UpgradeRefused(f"database {_name(conn)} is at several schema revisions at once ({', '.join(heads)})")
    return heads[0] if heads else None


def upgrade_database(store: Store) -> Upgrade:
    """Bring the store's database to ``HEAD``; raises ``UpgradeRefused`` naming it when that cannot be done."""
    started = time.monotonic()
    try:
        with store.write_engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            done = _upgrade(conn)
    except sa.exc.SQLAlchemyError as exc:
        raise UpgradeRefused(
            f"could not upgrade database {database_name(store.url)} to schema revision {HEAD}: {describe_error(exc)}. "
            "Check that [database] url names a reachable database whose user may create and alter tables "
            "(or run `tollgate db upgrade` once as a user who may), then start Tollgate again"
        ) from exc
    if done.before != done.after:
        logger.info("upgraded database %s to %s in %.2f s", database_name(store.url), HEAD, time.monotonic() - started)
    return done


def _upgrade(conn: sa.Connection) -> Upgrade:
    before = read_revision(conn)
    if before == HEAD:
        return Upgrade(before, HEAD, stamped=False)  # another process upgraded it while this one waited
    stamped = False
    if before is None:
        present = BASELINE_TABLES & set(sa.inspect(conn).get_table_names())
        if present and present != BASELINE_TABLES:
            raise UpgradeRefused(
                f"database {_name(conn)} has some of Tollgate's tables ({', '.join(sorted(present))}) but not "
                f"{', '.join(sorted(BASELINE_TABLES - present))}, and no schema revision: it was not made by a "
                "released Tollgate. Point [database] url at Tollgate's own database, or at an empty one"
            )
        stamped = present == BASELINE_TABLES
    else:
        _check_known(conn, before)
    steps = "; ".join(str(step) for step in pending(BASELINE if stamped else before))
    found = f"Tollgate 0.1.0's tables (stamped {BASELINE})" if stamped else before or "an empty database"
    logger.info("upgrading database %s from %s to %s: %s", _name(conn), found, HEAD, steps or "nothing to run")
    config = alembic_config(conn)
    if stamped:
        command.stamp(config, BASELINE)
    command.upgrade(config, "head")
    after = read_revision(conn)
    assert after == HEAD, f"the migrations end at {after}, not at proxy.recording.migrations.HEAD ({HEAD})"
    return Upgrade(before, after, stamped)


def _check_known(conn: sa.Connection, revision: str) -> None:
    known = {script.revision for script in scripts().walk_revisions()}
    if revision not in known:
        raise UpgradeRefused(
            f"database {_name(conn)} is at schema revision {revision}, which this Tollgate does not know "
            f"(its newest is {HEAD}): a newer Tollgate has upgraded it. Run that version (or newer), "
            "or restore a backup taken before the upgrade"
        )


def _name(conn: sa.Connection) -> str:
    return database_name(conn.engine.url)


def describe_error(exc: sa.exc.SQLAlchemyError) -> str:
    """The database's own words for what went wrong, on one line (SQLAlchemy's adds the statement)."""
    original = getattr(exc, "orig", None)
    return (str(original) if original is not None else str(exc)).strip().splitlines()[0]
