"""``tollgate limits``: the spend limits that apply, with what is spent, held and left in each window.

``tollgate limits set`` and ``tollgate limits remove`` change runtime limits in the database (every
instance applies them within ``budget.sync_interval``); ``tollgate limits history`` shows who changed what.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from proxy.cli.store import recorded_store
from proxy.cli.table import print_table
from proxy.config import load_config

_SCOPES = ("user", "team", "key", "agent", "thread")


def add_limits_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: Callable[[argparse.ArgumentParser], object],
) -> None:
    """Add ``limits`` (and ``limits set``, ``remove``, ``history``); ``config_option`` adds ``--config``."""
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
    changes = limits.add_subparsers(title="changing limits without editing the file", metavar="{set,remove,history}")
    set_ = changes.add_parser("set", help="set a runtime spend limit (beats a [[limits]] entry of the same one)")
    _subject_options(set_, config_option)
    set_.add_argument("--max-usd", required=True, help="most that may be spent in a window, in dollars")
    set_.add_argument("--action", default="block", choices=("block", "warn"), help="block (default) or warn")
    set_.add_argument("--timezone", default="UTC", help="where the window starts and ends (default UTC)")
    set_.add_argument("--alert-at", default="", help="fractions of max-usd to alert at, e.g. 0.5,0.8,1")
    set_.set_defaults(run=_set)
    remove = changes.add_parser("remove", help="remove a runtime spend limit (a [[limits]] entry applies again)")
    _subject_options(remove, config_option)
    remove.set_defaults(run=_remove)
    history = changes.add_parser("history", help="changes to runtime limits: who, when, before and after")
    config_option(history)
    history.add_argument("--json", action="store_true", help="print JSON")
    history.set_defaults(run=_history)


def _subject_options(
    parser: argparse.ArgumentParser, config_option: Callable[[argparse.ArgumentParser], object]
) -> None:
    config_option(parser)
    whom = parser.add_mutually_exclusive_group(required=True)
    for scope in _SCOPES:
        whom.add_argument(f"--{scope}", help=f"the limit of this {scope}, or '*' for each {scope} separately")
    whom.add_argument("--global", dest="global_", action="store_true", help="the limit on all requests together")
    parser.add_argument("--window", required=True, choices=("day", "week", "month", "total"), help="calendar window")
    parser.add_argument("--by", default=None, help="who makes the change, for the audit (default cli:<login>)")


def _subject(args: argparse.Namespace) -> tuple[str, str]:
    if args.global_:
        return "global", "*"
    scope = next(scope for scope in _SCOPES if getattr(args, scope) is not None)
    return scope, getattr(args, scope)


def _who(args: argparse.Namespace) -> str:
    return str(args.by) if args.by else f"cli:{getpass.getuser()}"


def _set(args: argparse.Namespace) -> int:
    from proxy.limits.runtime import InvalidLimit, RuntimeLimits, make_limit
    from proxy.recording.store import Store

    config = load_config(args.config)
    scope, limit_id = _subject(args)
    alert_at = [a.strip() for a in args.alert_at.split(",") if a.strip()]
    try:
        limit = make_limit(scope, limit_id, args.window, args.max_usd, args.action, args.timezone, alert_at)
    except InvalidLimit as exc:
        sys.stderr.write(f"tollgate: {exc}\n")
        return 2
    store = Store(config.database.url)
    store.create_tables()
    old, new = RuntimeLimits(store).set(limit, _who(args), datetime.now(UTC))
    before = f" (was ${old.limit.max_usd}, {old.limit.action})" if old is not None else ""
    subject = "all requests" if scope == "global" else f"{scope} {limit_id}"
    sys.stdout.write(
        f"runtime limit set: {subject}, {args.window}, ${new.limit.max_usd}, {new.limit.action}{before}; "
        f"every instance applies it within budget.sync_interval ({config.budget.sync_interval}s)\n"
    )
    return 0


def _remove(args: argparse.Namespace) -> int:
    from proxy.limits.runtime import RuntimeLimits

    config = load_config(args.config)
    store = recorded_store(config.database.url)
    if store is None:
        return 1
    scope, limit_id = _subject(args)
    old = RuntimeLimits(store).remove(scope, limit_id, args.window, _who(args), datetime.now(UTC))
    subject = "all requests" if scope == "global" else f"{scope} {limit_id}"
    if old is None:
        sys.stderr.write(f"tollgate: no runtime limit on {subject}, {args.window}\n")
        return 1
    sys.stdout.write(f"runtime limit removed: {subject}, {args.window} (was ${old.limit.max_usd})\n")
    return 0


def _history(args: argparse.Namespace) -> int:
    from proxy.limits.runtime import RuntimeLimits

    config = load_config(args.config)
    store = recorded_store(config.database.url)
    if store is None:
        return 1
    changes = RuntimeLimits(store).changes()
    if args.json:
        sys.stdout.write(orjson.dumps(changes, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if not changes:
        sys.stdout.write("no runtime limit has been changed\n")
        return 0
    rows = [("when", "by", "scope", "id", "window", "old", "new")] + [
        (
            c["changed_at"],
            c["changed_by"],
            c["scope"],
            c["limit_id"],
            c["window"],
            f"${c['old']['max_usd']} {c['old']['action']}" if c["old"] else "-",
            f"${c['new']['max_usd']} {c['new']['action']}" if c["new"] else "removed",
        )
        for c in changes
    ]
    print_table(rows, left=7)
    return 0


def _limits(args: argparse.Namespace) -> int:
    from proxy.limits.ledger import Ledger
    from proxy.limits.runtime import RuntimeLimits, limit_book
    from proxy.limits.state import Subject, limit_states
    from proxy.money import format_usd_column

    config = load_config(args.config)
    store = recorded_store(config.database.url)
    if store is None:
        return 1
    runtime = tuple(r.limit for r in RuntimeLimits(store).all())
    book = limit_book(config.limits, runtime)
    subject = Subject(user=args.user, team=args.team, thread=args.thread, agent=args.agent, key=args.key)
    team_of = {user: team for team, cfg in config.teams.items() for user in cfg.members}
    states = limit_states(book, Ledger(store, holder="cli"), datetime.now(UTC), subject=subject, team_of=team_of)
    if args.json:
        sys.stdout.write(orjson.dumps([s.as_json() for s in states], option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if not states:
        sys.stdout.write("no limits apply\n" if book else f"no [[limits]] in {config.source}\n")
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
