"""``tollgate usage``: recorded usage, filtered and grouped, as a table or JSON."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from proxy.cli.options import FILTERS, add_usage_filters, group_choice, window_is_possible
from proxy.cli.store import recorded_store
from proxy.cli.table import print_table
from proxy.config import Config, load_config

if TYPE_CHECKING:
    from proxy.recording.reports import ReportRow
    from proxy.recording.store import Store


def add_usage_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: Callable[[argparse.ArgumentParser], object],
) -> None:
    """Add ``usage``; ``config_option`` adds ``--config`` to a parser."""
    usage = commands.add_parser("usage", help="report recorded usage")
    config_option(usage)
    add_usage_filters(usage)
    usage.add_argument(
        "--group-by",
        type=group_choice,
        metavar="GROUP",
        help="one row per user, team, agent, thread, model, provider, day, month or tag:<name>",
    )
    usage.add_argument("--json", action="store_true", help="print JSON (costs as decimal strings)")
    usage.add_argument(
        "--forecast",
        action="store_true",
        help="month-end projections per user, team and in total, and when each limit will be reached",
    )
    usage.set_defaults(run=_usage)


def _usage(args: argparse.Namespace) -> int:
    from proxy.money import format_usd_column
    from proxy.recording.reports import usage_report

    if not window_is_possible(args):
        return 2
    config = load_config(args.config)
    store = recorded_store(config.database.url)
    if store is None:
        return 1
    if args.forecast:
        from proxy.cli.forecast import print_forecast

        return print_forecast(config, store, args.user, args.team, args.json)
    filters = {name: getattr(args, name) for name in FILTERS}
    rows = usage_report(store, args.group_by, filters=filters, since=args.since, until=args.until, tags=dict(args.tag))
    # Grouped by provider, each row also says which kind of API it is (openai, anthropic, gemini or azure).
    kinds = _kinds(config, store, rows) if args.group_by == "provider" else None
    if args.json:
        report = [r.as_json() | ({"kind": kinds.get(r.group or "")} if kinds is not None else {}) for r in rows]
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if not rows:
        sys.stdout.write("no usage recorded in this window\n")
        return 0
    costs = format_usd_column([r.cost_usd for r in rows])
    header: tuple[str, ...] = (
        args.group_by or "group",
        "requests",
        "input",
        "output",
        "cached",
        "reasoning",
        "cost",
        "unpriced",
    )
    if kinds is not None:
        header = (header[0], "kind", *header[1:])
    table = [header] + [
        (
            r.group if r.group is not None else "(none)",
            *((kinds.get(r.group or "", "-"),) if kinds is not None else ()),
            str(r.requests),
            str(r.input_tokens),
            str(r.output_tokens),
            str(r.cached_input_tokens),
            str(r.reasoning_tokens),
            "unpriced" if r.unpriced_requests and not r.cost_usd else cost,
            str(r.unpriced_requests) if r.unpriced_requests else "",
        )
        for r, cost in zip(rows, costs, strict=True)
    ]
    print_table(table)
    return 0


def _kinds(config: Config, store: Store, rows: list[ReportRow]) -> dict[str, str]:
    """Each provider's kind as its rows recorded it, else as the config names it (rows archived away)."""
    from proxy.recording.reports import provider_kinds

    names = [r.group for r in rows if r.group is not None]
    return {p.name: p.kind for p in config.providers} | provider_kinds(store, names)
