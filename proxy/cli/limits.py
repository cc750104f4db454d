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
    limits = commands.add_parser(
        "limits", help="show spend limits: source, state, window, spent, held, limit, remaining"
    )
    config_option(limits)
    limits.add_argument("--user", help="the limits that apply to this user (their [teams] team's included)")
    limits.add_argument("--team", help="the limits that apply to this team")
    limits.add_argument("--thread", help="the limits that apply to this thread")
    limits.add_argument("--agent", help="the limits that apply to this agent")
    limits.add_argument("--key", help="the limits that apply to this managed key (by its name)")
    limits.add_argument("--json", action="store_true", help="print JSON (money as decimal strings)")
    limits.set_defaults(run=_limits)


def _limits(args: argparse.Namespace) -> int:
    from proxy.limits.ledger import Ledger
    from proxy.limits.rules import LimitBook, compile_rules
    from proxy.limits.state import Subject, limit_states
    from proxy.money import format_usd_column

    config = load_config(args.config)
    store = recorded_store(config.database.url)
    if store is None:
        return 1
    book = LimitBook(compile_rules(config.limits))
    subject = Subject(user=args.user, team=args.team, thread=args.thread, agent=args.agent, key=args.key)
    team_of = {user: team for team, cfg in config.teams.items() for user in cfg.members}
    states = limit_states(book, Ledger(store, holder="cli"), datetime.now(UTC), subject=subject, team_of=team_of)
    if args.json:
        sys.stdout.write(orjson.dumps([s.as_json() for s in states], option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if not states:
        sys.stdout.write("no limits apply\n" if config.limits else f"no [[limits]] in {config.source}\n")
        return 0
    money = format_usd_column([a for s in states for a in (s.spent, s.held, s.limit, s.remaining)])
    header = ("scope", "id", "source", "state", "window", "action", "spent", "held", "limit", "remaining", "resets")
    rows = [header] + [
        (
            s.scope,
            s.id,
            s.source,
            s.state,
            f"{s.window} {s.window_label}" if s.window != "total" else "total",
            s.action,
            *money[4 * i : 4 * i + 4],
            f"{s.resets_at:%Y-%m-%d %H:%M}Z" if s.resets_at else "never",
        )
        for i, s in enumerate(states)
    ]
    print_table(rows, left=6)
    return 0
