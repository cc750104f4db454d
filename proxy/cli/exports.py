"""``tollgate export usage``, ``tollgate archive`` and ``tollgate rollups rebuild``: usage rows in bulk."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from proxy.cli.options import FILTERS, add_usage_filters, parse_date, window_is_possible
from proxy.cli.store import recorded_store
from proxy.config import load_config


def add_export_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: Callable[[argparse.ArgumentParser], object],
) -> None:
    """Add ``export usage`` and ``archive``; ``config_option`` adds ``--config`` to a parser."""
    export = commands.add_parser("export", help="export usage rows")
    export_commands = export.add_subparsers(required=True, metavar="WHAT")
    export_usage = export_commands.add_parser(
        "usage",
        help="stream usage rows as CSV, a JSON array or JSON lines",
        description="Stream usage rows, oldest first. Every format has cost_usd (dollars, a decimal string) "
        "beside cost_pico; tags are an object in JSON and name=value;... in CSV.",
    )
    config_option(export_usage)
    add_usage_filters(export_usage)
    export_usage.add_argument(
        "--format", choices=("csv", "json", "jsonl"), default="jsonl", help="output format (default: jsonl)"
    )
    export_usage.set_defaults(run=_export_usage)

    archive = commands.add_parser("archive", help="move old usage rows to compressed files, or import them back")
    config_option(archive)
    which = archive.add_mutually_exclusive_group(required=True)
    which.add_argument("--before", type=parse_date, help="archive rows that started before this date (UTC)")
    which.add_argument("--import", dest="import_file", help="import an archive file back")
    archive.add_argument("--folder", default="./tollgate-archive", help="where archives are written")
    archive.set_defaults(run=_archive)


def add_rollup_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: Callable[[argparse.ArgumentParser], object],
) -> None:
    """Add ``rollups rebuild``; ``config_option`` adds ``--config`` to a parser."""
    rollups = commands.add_parser("rollups", help="daily and monthly usage rollups")
    rollup_commands = rollups.add_subparsers(required=True, metavar="ACTION")
    rebuild = rollup_commands.add_parser("rebuild", help="recompute the rollups from the raw usage rows")
    config_option(rebuild)
    rebuild.set_defaults(run=_rollups_rebuild)


def _export_usage(args: argparse.Namespace) -> int:
    from proxy.recording.export import iter_usage, write_csv, write_json, write_jsonl

    if not window_is_possible(args):
        return 2
    store = recorded_store(load_config(args.config).database.url)
    if store is None:
        return 1
    filters = {name: getattr(args, name) for name in FILTERS}
    rows = iter_usage(store, args.since, args.until, filters=filters, tags=dict(args.tag))
    if args.format == "csv":
        write_csv(rows, sys.stdout)
    else:
        sys.stdout.flush()
        (write_json if args.format == "json" else write_jsonl)(rows, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    return 0


def _archive(args: argparse.Namespace) -> int:
    from proxy.recording.export import archive, import_archive
    from proxy.recording.store import Store

    store = Store(load_config(args.config).database.url)
    store.create_tables()
    if args.import_file:
        count = import_archive(store, Path(args.import_file))
        sys.stdout.write(f"imported {count} usage rows from {args.import_file}\n")
        return 0
    path, count = archive(store, args.before, Path(args.folder))
    sys.stdout.write(f"archived {count} usage rows to {path}\n")
    return 0


def _rollups_rebuild(args: argparse.Namespace) -> int:
    from proxy.recording.rollups import rebuild_rollups
    from proxy.recording.store import Store

    config = load_config(args.config)
    store = Store(config.database.url)
    store.create_tables()
    count = rebuild_rollups(store)
    sys.stdout.write(f"rebuilt {count} rollup rows from the usage records\n")
    return 0
