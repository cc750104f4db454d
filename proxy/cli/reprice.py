"""``tollgate reprice --since D --until D [--version V] [--apply]``: price a window's rows again, on purpose.

A dry run by default: it shows, per user and model, what would change, and changes nothing.
``--apply`` changes the rows, rollups and spend counters in one transaction and writes an audit
entry (``proxy.recording.reprice``). Issued invoices are never changed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import orjson

from proxy.cli.options import parse_date
from proxy.config import load_config

if TYPE_CHECKING:
    from proxy.recording.reprice import Repricing


def add_reprice_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: Callable[[argparse.ArgumentParser], object],
) -> None:
    """Add ``reprice``; ``config_option`` adds ``--config`` to a parser."""
    reprice = commands.add_parser(
        "reprice",
        help="price a window's rows again with a price version (a dry run unless --apply)",
        description="Price the rows started in [--since, --until) again from their token counts. By default "
        "nothing changes: it shows, per user and model, what would. Issued invoices are never changed.",
    )
    config_option(reprice)
    reprice.add_argument("--since", type=parse_date, required=True, help="from this date or time (UTC, inclusive)")
    reprice.add_argument("--until", type=parse_date, required=True, help="up to this date or time (UTC, exclusive)")
    reprice.add_argument(
        "--version",
        type=int,
        help="price with this version (0: the config's); default: each row's version in force at its start",
    )
    reprice.add_argument(
        "--apply", action="store_true", help="change the rows, rollups and spend counters, and write an audit entry"
    )
    reprice.add_argument("--json", action="store_true", help="print JSON (money as picodollar integers)")
    reprice.set_defaults(run=_reprice)


def _reprice(args: argparse.Namespace) -> int:
    from pricing import Catalog
    from proxy.cli.store import recorded_store
    from proxy.clock import system_clock
    from proxy.recording.prices import load_history
    from proxy.recording.reprice import reprice

    if args.since >= args.until:
        sys.stderr.write("tollgate: --since must be before --until\n")
        return 2
    config = load_config(args.config)
    store = recorded_store(config.database.url)
    if store is None:
        return 1
    deployments = {(p.name, name): model for p in config.providers for name, model in p.deployments.items()}
    try:
        history = load_history(store, Catalog.load(config.pricing_models))
        try:
            done = reprice(
                store,
                history,
                args.since,
                args.until,
                version=args.version,
                apply=args.apply,
                now=system_clock(),
                deployments=deployments,
            )
        except KeyError:
            sys.stderr.write(f"tollgate: no price version {args.version}; `tollgate prices versions` lists them\n")
            return 1
    finally:
        store.dispose()
    if args.json:
        out = {
            "since": done.since.isoformat(),
            "until": done.until.isoformat(),
            "version": done.version,
            "applied": args.apply,
            "audit_id": done.audit_id,
            "rows_read": done.rows_read,
            "rows_changed": done.rows_changed,
            "changes": [g.as_json() for g in done.groups],
        }
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    _print(done, args.apply)
    return 0


def _print(done: Repricing, applied: bool) -> None:
    from pricing import pico_to_usd
    from proxy.cli.table import print_table
    from proxy.money import format_usd_column

    which = "each row's version in force" if done.version is None else f"price version {done.version}"
    sys.stdout.write(
        f"{done.since:%Y-%m-%d %H:%M} to {done.until:%Y-%m-%d %H:%M} UTC, priced with {which}: "
        f"{done.rows_read} rows read, {done.rows_changed} {'changed' if applied else 'would change'}\n"
    )
    if done.groups:
        amounts = [
            pico_to_usd(p) for g in done.groups for p in (g.before_pico, g.after_pico, g.after_pico - g.before_pico)
        ]
        cells = format_usd_column(amounts)
        table: list[tuple[str, ...]] = [("user", "model", "rows", "before", "after", "change", "unpriced")]
        for i, g in enumerate(done.groups):
            unpriced = f"{g.unpriced_before} -> {g.unpriced_after}" if g.unpriced_before != g.unpriced_after else ""
            table.append((g.user or "(none)", g.model or "(none)", str(g.rows), *cells[3 * i : 3 * i + 3], unpriced))
        print_table(table, left=2)
    if applied:
        audit = f"; audit entry {done.audit_id}" if done.audit_id is not None else ""
        sys.stdout.write(f"applied: rows, rollups and spend counters changed in one transaction{audit}\n")
        months = ", ".join(_months(done.since, done.until))
        sys.stdout.write(
            "issued invoices are unchanged; `tollgate invoices correct --period P` issues corrected ones "
            f"(P: {months})\n"
        )
    else:
        sys.stdout.write("dry run: nothing changed (--apply changes the rows, rollups and spend counters)\n")


def _months(since: datetime, until: datetime) -> list[str]:
    """The calendar months (UTC) that [since, until) touches, as invoice periods."""
    last = until.astimezone(UTC) - timedelta(microseconds=1)
    year, month = since.astimezone(UTC).year, since.astimezone(UTC).month
    months = []
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months
