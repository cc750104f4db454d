"""``tollgate storage run``: record one day of vector storage (see ``proxy.storage``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date

from proxy.config import load_config


def add_storage_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: Callable[[argparse.ArgumentParser], object],
) -> None:
    """Add ``storage run``; ``config_option`` adds ``--config`` to a parser."""
    storage = commands.add_parser("storage", help="bill vector storage: one row per store per day")
    actions = storage.add_subparsers(dest="storage_command", required=True, metavar="COMMAND")
    run = actions.add_parser("run", help="list every managed key's vector stores and record today's storage once")
    config_option(run)
    run.add_argument(
        "--day", type=date.fromisoformat, default=None, help="the UTC day to record, YYYY-MM-DD (default: today)"
    )
    run.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from pricing import decimal_text, pico_to_usd, tool_prices
    from proxy.clock import system_clock
    from proxy.providers import ProviderRouter
    from proxy.recording.store import Store
    from proxy.storage import run_storage

    config = load_config(args.config)
    store = Store(config.database.url)
    store.create_tables()
    day = args.day or system_clock().date()  # the CLI is the edge that reads the wall clock
    rows = run_storage(ProviderRouter(config.providers), store, day, tool_prices(config.pricing_tools))
    width = max((len(row.resource_id or "") for row in rows), default=0)
    for row in rows:
        owner = row.user_id or row.team_id or row.key_name or f"provider {row.provider}"
        cost = "$" + decimal_text(pico_to_usd(row.cost_pico or 0))
        sys.stdout.write(f"{row.resource_id or '':<{width}}  {row.storage_bytes:>14,} bytes  {cost:>9}  {owner}\n")
    sys.stdout.write(f"{len(rows)} storage rows recorded for {day.isoformat()}\n")
    return 0
