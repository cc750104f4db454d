"""``tollgate limits``: the spend limits that apply, with what is spent, held and left in each window."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from proxy.cli.store import recorded_store
from proxy.cli.table import print_table
from proxy.config import load_config


def add_limits_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: Callable[[argparse.ArgumentParser], object],
) -> None:
    """Add ``limits``; ``config_option`` adds ``--config`` to a parser."""
    limits = commands.add_parser("limits", help="show spend limits: window, spent, held, limit, remaining")
    config_option(limits)
    limits.add_argument("--user", help="the limits that apply to this user")
    limits.add_argument("--team", help="the limits that apply to this team")
    limits.add_argument("--json", action="store_true", help="print JSON (money as decimal strings)")
    limits.set_defaults(run=_limits)


def _limits(args: argparse.Namespace) -> int:
    from proxy.limits.ledger import Ledger
    from proxy.limits.rules import LimitBook, compile_rules
    from proxy.limits.state import limit_states

    config = load_config(args.config)
    store = recorded_store(config.database.url)
    if store is None:
        return 1
    book = LimitBook(compile_rules(config.limits))
    states = limit_states(book, Ledger(store, holder="cli"), datetime.now(UTC), args.user, args.team)
    if args.json:
        sys.stdout.write(orjson.dumps([s.as_json() for s in states], option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if not states:
        sys.stdout.write("no limits apply\n" if config.limits else f"no [[limits]] in {config.source}\n")
        return 0
    header = ("scope", "id", "window", "action", "spent", "held", "limit", "remaining", "resets")
    rows = [header] + [
        (
            s.scope,
            s.id,
            f"{s.window} {s.window_label}" if s.window != "total" else "total",
            s.action,
            f"${s.spent}",
            f"${s.held}",
            f"${s.limit}",
            f"${s.remaining}",
            f"{s.resets_at:%Y-%m-%d %H:%M}Z" if s.resets_at else "never",
        )
        for s in states
    ]
    print_table(rows, left=4)
    return 0
