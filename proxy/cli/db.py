"""``tollgate db current|upgrade``: the database's schema revision, and upgrading it, for operators.

``tollgate serve`` upgrades at start; these let an operator look first, or upgrade as a user with
more rights than the server's. ``python -m proxy.cli.db db ...`` runs the same commands on their own.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from proxy.config import ConfigError, load_config
from proxy.recording.migrations import BASELINE, HEAD, UpgradeRefused, database_name
from proxy.recording.store import Store

logger = logging.getLogger("tollgate.db")


def add_db_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: Callable[[argparse.ArgumentParser], object],
) -> None:
    """Add ``db`` and its actions; ``config_option`` adds ``--config`` to a parser."""
    db = subparsers.add_parser("db", help="show or upgrade the database's schema revision")
    actions = db.add_subparsers(required=True, metavar="ACTION")
    current = actions.add_parser(
        "current", help="print the schema revision and whether it is the newest (exit status 0 only if it is)"
    )
    config_option(current)
    current.set_defaults(run=_current)
    upgrade = actions.add_parser("upgrade", help="upgrade the database to the newest revision, as serve does at start")
    config_option(upgrade)
    upgrade.set_defaults(run=_upgrade)


def _current(args: argparse.Namespace) -> int:
    from proxy.recording.migrations.schema import (
        BASELINE_TABLES,
        describe,
        describe_error,
        pending,
        read_revision,
        scripts,
    )

    store = Store(load_config(args.config).database.url)
    name = database_name(store.url)
    try:
        with store.engine.connect() as conn:
            revision = read_revision(conn)
            tables = BASELINE_TABLES & set(sa.inspect(conn).get_table_names())
    except (sa.exc.SQLAlchemyError, UpgradeRefused) as exc:
        reason = describe_error(exc) if isinstance(exc, sa.exc.SQLAlchemyError) else str(exc)
        sys.stderr.write(f"tollgate: cannot read the schema revision of database {name}: {reason}\n")
        return 1
    finally:
        store.dispose()
    newest = describe(HEAD)
    if revision == HEAD:
        sys.stdout.write(f"{name}: {newest}, the newest\n")
        return 0
    if revision is not None and revision not in {s.revision for s in scripts().walk_revisions()}:
        sys.stdout.write(
            f"{name}: {revision}, which this Tollgate does not know (its newest is {HEAD}): "
            "a newer Tollgate upgraded it\n"
        )
        return 1
    if revision is None and not tables:
        sys.stdout.write(f"{name}: no Tollgate tables yet; `tollgate db upgrade` creates them at {newest}\n")
        return 1
    if revision is None and tables != BASELINE_TABLES:
        sys.stdout.write(f"{name}: some of Tollgate's tables and no schema revision: not made by a released Tollgate\n")
        return 1
    if revision is None:
        found, todo = f"Tollgate 0.1.0's tables, with no revision recorded: {describe(BASELINE)}", ["records it"]
    else:
        found, todo = str(describe(revision)), []
    steps = pending(revision or BASELINE)
    todo += [f"runs {', '.join(step.id for step in steps)}"] if steps else []
    sys.stdout.write(f"{name}: {found}; not the newest, {newest}: `tollgate db upgrade` {' and '.join(todo)}\n")
    return 1


def _upgrade(args: argparse.Namespace) -> int:
    from proxy.recording.migrations.schema import describe, upgrade_database

    store = Store(load_config(args.config).database.url)
    name = database_name(store.url)
    try:
        done = upgrade_database(store)
    except UpgradeRefused as exc:
        sys.stderr.write(f"tollgate: {exc}\n")
        return 1
    finally:
        store.dispose()
    if done.before == done.after:
        sys.stdout.write(f"{name}: already at {describe(HEAD)}, the newest\n")
    else:
        found = "Tollgate 0.1.0's tables" if done.stamped else done.before or "no tables"
        sys.stdout.write(f"{name}: upgraded from {found} to {describe(done.after)}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tollgate")
    add_db_commands(
        parser.add_subparsers(required=True, metavar="COMMAND"),
        lambda p: p.add_argument("--config", help="config file (default: $TOLLGATE_CONFIG, else ./config.toml)"),
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        sys.stderr.write(f"tollgate: invalid config: {exc}\n")
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
