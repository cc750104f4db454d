"""``tollgate alerts``: the alerts sent (anomalies, forecast warnings and threshold alerts), newest first."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import orjson

from proxy.cli.options import parse_date
from proxy.cli.store import recorded_store
from proxy.cli.table import print_table
from proxy.config import load_config

_KINDS = ("spike", "new", "runaway", "forecast", "threshold")


def add_alerts_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: Callable[[argparse.ArgumentParser], object],
) -> None:
    """Add ``alerts``; ``config_option`` adds ``--config`` to a parser."""
    alerts = commands.add_parser("alerts", help="list the alerts sent: anomalies and threshold alerts")
    config_option(alerts)
    alerts.add_argument("--since", type=parse_date, help="only alerts from this date or time (UTC)")
    alerts.add_argument("--kind", choices=_KINDS, help="only alerts of this kind")
    alerts.add_argument("--json", action="store_true", help="print JSON (money as decimal strings)")
    alerts.set_defaults(run=_alerts)


def _alerts(args: argparse.Namespace) -> int:
    from proxy.insight.history import recorded_alerts

    config = load_config(args.config)
    store = recorded_store(config.database.url)
    if store is None:
        return 1
    items = recorded_alerts(store, args.since, args.kind)
    store.dispose()
    if args.json:
        sys.stdout.write(orjson.dumps(items, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if not items:
        sys.stdout.write("no alerts sent" + (f" since {args.since.isoformat()}" if args.since else "") + "\n")
        return 0
    table = [("time", "kind", "scope", "id", "window", "cost_usd", "detail")]
    table += [
        (item["time"], item["kind"], item["scope"], item["id"], item["window"], item["cost_usd"], item["detail"])
        for item in items
    ]
    print_table(table, left=7)
    return 0
