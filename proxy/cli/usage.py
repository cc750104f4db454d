"""``tollgate usage``: recorded usage, filtered and grouped, as a table or JSON."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import orjson

from proxy.cli.options import parse_date
from proxy.cli.store import recorded_store
from proxy.cli.table import print_table
from proxy.config import load_config


def add_usage_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: Callable[[argparse.ArgumentParser], object],
) -> None:
    """Add ``usage``; ``config_option`` adds ``--config`` to a parser."""
    usage = commands.add_parser("usage", help="report recorded usage")
    config_option(usage)
    for name in ("user", "team", "agent", "thread", "model"):
        usage.add_argument(f"--{name}", help=f"only this {name}")
    usage.add_argument("--since", type=parse_date, help="from this date or time (UTC, inclusive)")
    usage.add_argument("--until", type=parse_date, help="up to this date or time (UTC, exclusive)")
    usage.add_argument(
        "--group-by",
        choices=("user", "team", "agent", "thread", "model", "provider", "kind", "day", "month"),
        help="one row per",
    )
    usage.add_argument("--json", action="store_true", help="print JSON (costs as decimal strings)")
    usage.add_argument(
        "--forecast",
        action="store_true",
        help="month-end projections per user, team and in total, and when each limit will be reached",
    )
    usage.set_defaults(run=_usage)


def _usage(args: argparse.Namespace) -> int:
    from pricing import decimal_text
    from proxy.recording.reports import usage_report

    config = load_config(args.config)
    store = recorded_store(config.database.url)
    if store is None:
        return 1
    if args.forecast:
        from proxy.cli.forecast import print_forecast

        return print_forecast(config, store, args.user, args.team, args.json)
    filters = {name: getattr(args, name) for name in ("user", "team", "agent", "thread", "model")}
    rows = usage_report(store, args.group_by, filters=filters, since=args.since, until=args.until)
    if args.json:
        sys.stdout.write(orjson.dumps([r.as_json() for r in rows], option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    header = (args.group_by or "group", "requests", "input", "output", "cached", "reasoning", "cost_usd")
    table = [header] + [
        (
            r.group if r.group is not None else "(none)",
            str(r.requests),
            str(r.input_tokens),
            str(r.output_tokens),
            str(r.cached_input_tokens),
            str(r.reasoning_tokens),
            decimal_text(r.cost_usd) + (f"  (+{r.unpriced_requests} unpriced)" if r.unpriced_requests else ""),
        )
        for r in rows
    ]
    print_table(table)
    return 0
