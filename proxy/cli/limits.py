"""``tollgate limits``: the spend limits that apply, with what is spent, held and left in each window.

``tollgate limits set`` and ``tollgate limits remove`` change runtime limits in the database (every
instance applies them within ``budget.sync_interval``); ``tollgate limits history`` shows who changed what.
A limit is named as ``proxy.limits.runtime`` says: its subject (``--user alice``, ``--tag project --id apollo``,
``--global``), ``--window`` and ``--models``, so ``remove`` takes the same ``--tag`` and ``--models`` as ``set``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence
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
    set_.add_argument(
        "--start-day", type=int, default=1, metavar="N", help="with --window month: the day (1-28) a month starts on"
    )
    set_.add_argument(
        "--on-exceed",
        default="refuse",
        choices=("refuse", "clamp"),
        help="refuse (default) a request whose bound does not fit, or clamp its output cap to what fits",
    )
    set_.add_argument(
        "--min-output-tokens",
        type=int,
        default=256,
        metavar="N",
        help="with --on-exceed clamp: the fewest output tokens worth forwarding (default 256)",
    )
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
    whom.add_argument("--tag", metavar="NAME", help="the limit on values of tag NAME (X-Tollgate-Tag-NAME); see --id")
    parser.add_argument("--id", help="with --tag: the tag's value, or '*' (the default) for each value separately")
    parser.add_argument("--window", required=True, choices=("day", "week", "month", "total"), help="calendar window")
    parser.add_argument(
        "--models",
        action="append",
        default=[],
        metavar="GLOB",
        help="only spend on these models (names or * and ? globs; repeat, or a comma list); default every model",
    )
    parser.add_argument("--by", default=None, help="who makes the change, for the audit (default cli:<login>)")


def _subject(args: argparse.Namespace) -> tuple[str, str] | None:
    """(scope, id), or None (said on stderr) when ``--id`` is given without ``--tag``."""
    if args.id is not None and args.tag is None:
        sys.stderr.write("tollgate: --id names a tag's value: give it with --tag NAME\n")
        return None
    if args.global_:
        return "global", "*"
    if args.tag is not None:
        return "tag", args.id if args.id is not None else "*"
    scope = next(scope for scope in _SCOPES if getattr(args, scope) is not None)
    return scope, getattr(args, scope)


def _models(args: argparse.Namespace) -> list[str]:
    return [model.strip() for given in args.models for model in given.split(",") if model.strip()]


def _describe(scope: str, limit_id: str, tag: str | None, models: Sequence[str], window: str) -> str:
    """'tag project apollo on gpt-5*, month', for messages."""
    subject = "all requests" if scope == "global" else f"{scope} {tag} {limit_id}" if tag else f"{scope} {limit_id}"
    return f"{subject}{' on ' + ', '.join(models) if models else ''}, {window}"


def _who(args: argparse.Namespace) -> str:
    return str(args.by) if args.by else f"cli:{getpass.getuser()}"


def _set(args: argparse.Namespace) -> int:
    from proxy.limits.runtime import InvalidLimit, RuntimeLimits, make_limit
    from proxy.recording.store import Store

    config = load_config(args.config)
    subject = _subject(args)
    if subject is None:
        return 2
    scope, limit_id = subject
    alert_at = [a.strip() for a in args.alert_at.split(",") if a.strip()]
    try:
        limit = make_limit(
            scope,
            limit_id,
            args.window,
            args.max_usd,
            args.action,
            args.timezone,
            alert_at,
            tag=args.tag,
            models=_models(args),
            start_day=args.start_day,
            on_exceed=args.on_exceed,
            min_output_tokens=args.min_output_tokens,
        )
    except InvalidLimit as exc:
        sys.stderr.write(f"tollgate: {exc}\n")
        return 2
    store = Store(config.database.url)
    try:
        store.create_tables()
        old, new = RuntimeLimits(store).set(limit, _who(args), datetime.now(UTC))
    finally:
        store.dispose()
    before = ""
    if old is not None:
        was = old.limit
        before = f" (was ${was.max_usd}, {_action(was.action, was.on_exceed, was.min_output_tokens)})"
    name = _describe(scope, limit.id, limit.tag, limit.models, args.window)
    action = _action(limit.action, limit.on_exceed, limit.min_output_tokens)
    sys.stdout.write(
        f"runtime limit set: {name}, ${new.limit.max_usd}, {action}{before}; "
        f"every instance applies it within budget.sync_interval ({config.budget.sync_interval}s)\n"
    )
    return 0


def _remove(args: argparse.Namespace) -> int:
    from proxy.limits.runtime import RuntimeLimits

    config = load_config(args.config)
    store = recorded_store(config.database.url)
    if store is None:
        return 1
    subject = _subject(args)
    if subject is None:
        return 2
    scope, limit_id = subject
    models = _models(args)
    now = datetime.now(UTC)
    try:
        old = RuntimeLimits(store).remove(scope, limit_id, args.window, _who(args), now, tag=args.tag, models=models)
    finally:
        store.dispose()
    name = _describe(scope, limit_id, args.tag.lower() if args.tag else None, sorted(set(models)), args.window)
    if old is None:
        sys.stderr.write(f"tollgate: no runtime limit on {name}\n")
        return 1
    sys.stdout.write(f"runtime limit removed: {name} (was ${old.limit.max_usd})\n")
    return 0


def _history(args: argparse.Namespace) -> int:
    from proxy.limits.runtime import RuntimeLimits

    config = load_config(args.config)
    store = recorded_store(config.database.url)
    if store is None:
        return 1
    try:
        changes = RuntimeLimits(store).changes()
    finally:
        store.dispose()
    if args.json:
        sys.stdout.write(orjson.dumps(changes, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if not changes:
        sys.stdout.write("no runtime limit has been changed\n")
        return 0
    rows = [("when", "by", "scope", "id", "window", "models", "old", "new")] + [
        (
            c["changed_at"],
            c["changed_by"],
            f"tag={c['tag']}" if c["tag"] else c["scope"],
            c["limit_id"],
            c["window"],
            ",".join(c["models"]) or "any",
            f"${c['old']['max_usd']} {c['old']['action']}" if c["old"] else "-",
            f"${c['new']['max_usd']} {c['new']['action']}" if c["new"] else "removed",
        )
        for c in changes
    ]
    print_table(rows, left=8)
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
    try:
        runtime = tuple(r.limit for r in RuntimeLimits(store).all())
        book = limit_book(config.limits, runtime)
        subject = Subject(user=args.user, team=args.team, thread=args.thread, agent=args.agent, key=args.key)
        team_of = {user: team for team, cfg in config.teams.items() for user in cfg.members}
        states = limit_states(book, Ledger(store, holder="cli"), datetime.now(UTC), subject=subject, team_of=team_of)
    finally:
        store.dispose()
    if args.json:
        sys.stdout.write(orjson.dumps([s.as_json() for s in states], option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if not states:
        sys.stdout.write("no limits apply\n" if book else f"no [[limits]] in {config.source}\n")
        return 0
    money = format_usd_column([a for s in states for a in (s.spent, s.held, s.limit, s.remaining)])
    # A models column only when some limit counts some models: most books have none.
    models = any(s.models for s in states)
    header = ("scope", "id", *(("models",) * models), "source", "state", "window", "action")
    rows = [(*header, "spent", "held", "limit", "remaining", "resets")] + [
        (
            f"tag={s.tag}" if s.tag else s.scope,
            s.id,
            *((",".join(s.models) or "any",) * models),
            s.source,
            s.state,
            f"{s.window} {s.window_label}" if s.window != "total" else "total",
            _action(s.action, s.on_exceed, s.min_output_tokens),
            *money[4 * i : 4 * i + 4],
            f"{s.resets_at:%Y-%m-%d %H:%M}Z" if s.resets_at else "never",
        )
        for i, s in enumerate(states)
    ]
    print_table(rows, left=len(header))
    return 0


def _action(action: str, on_exceed: str, min_output_tokens: int) -> str:
    """'block', 'warn', or 'clamp>=256' for a blocking limit that clamps a request's output cap."""
    return f"clamp>={min_output_tokens}" if action == "block" and on_exceed == "clamp" else action
