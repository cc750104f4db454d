"""The ``tollgate`` command: serve, report usage, show prices, make keys."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from proxy.billing.cli import add_invoice_commands
from proxy.cli.db import add_db_commands
from proxy.config import ConfigError, load_config

if TYPE_CHECKING:
    from proxy.recording.store import Store

logger = logging.getLogger("tollgate.cli")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("TOLLGATE_LOG_LEVEL", "INFO").upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        print(f"tollgate: invalid config: {exc}", file=sys.stderr)
        return 2
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tollgate", description="An OpenAI-compatible metering proxy.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the proxy")
    _config_option(serve)
    serve.add_argument("--host", help="address to listen on (default: [server] host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: [server] port)")
    serve.add_argument("--workers", type=int, help="worker processes (default: [server] workers)")
    serve.set_defaults(run=_serve)

    usage = commands.add_parser("usage", help="report recorded usage")
    _config_option(usage)
    for name in ("user", "team", "agent", "thread", "model"):
        usage.add_argument(f"--{name}", help=f"only this {name}")
    usage.add_argument("--since", type=_date, help="from this date or time (UTC, inclusive)")
    usage.add_argument("--until", type=_date, help="up to this date or time (UTC, exclusive)")
    usage.add_argument(
        "--group-by",
        choices=("user", "team", "agent", "thread", "model", "provider", "day", "month"),
        help="one row per",
    )
    usage.add_argument("--json", action="store_true", help="print JSON (costs as decimal strings)")
    usage.set_defaults(run=_usage)

    limits = commands.add_parser("limits", help="show spend limits: window, spent, held, limit, remaining")
    _config_option(limits)
    limits.add_argument("--user", help="the limits that apply to this user")
    limits.add_argument("--team", help="the limits that apply to this team")
    limits.add_argument("--json", action="store_true", help="print JSON (money as decimal strings)")
    limits.set_defaults(run=_limits)

    export = commands.add_parser("export", help="export usage rows")
    export_commands = export.add_subparsers(required=True, metavar="WHAT")
    export_usage = export_commands.add_parser("usage", help="stream usage rows as CSV or JSON lines")
    _config_option(export_usage)
    export_usage.add_argument("--since", type=_date, help="from this date or time (UTC, inclusive)")
    export_usage.add_argument("--until", type=_date, help="up to this date or time (UTC, exclusive)")
    export_usage.add_argument("--format", choices=("csv", "jsonl"), default="jsonl")
    export_usage.set_defaults(run=_export_usage)

    archive = commands.add_parser("archive", help="move old usage rows to compressed files, or import them back")
    _config_option(archive)
    which = archive.add_mutually_exclusive_group(required=True)
    which.add_argument("--before", type=_date, help="archive rows that started before this date (UTC)")
    which.add_argument("--import", dest="import_file", help="import an archive file back")
    archive.add_argument("--folder", default="./tollgate-archive", help="where archives are written")
    archive.set_defaults(run=_archive)

    add_invoice_commands(commands, _config_option)
    add_db_commands(commands, _config_option)

    rollups = commands.add_parser("rollups", help="daily and monthly usage rollups")
    rollup_commands = rollups.add_subparsers(required=True, metavar="ACTION")
    rebuild = rollup_commands.add_parser("rebuild", help="recompute the rollups from the raw usage rows")
    _config_option(rebuild)
    rebuild.set_defaults(run=_rollups_rebuild)

    prices = commands.add_parser("prices", help="show the prices used for a model, and where they come from")
    _config_option(prices)
    prices.add_argument("model")
    prices.set_defaults(run=_prices)

    keys = commands.add_parser("keys", help="make managed keys")
    key_commands = keys.add_subparsers(required=True, metavar="ACTION")
    new = key_commands.add_parser("new", help="print a new random key and its [[keys]] entry")
    new.add_argument("--user")
    new.add_argument("--team")
    new.add_argument("--name", default="")
    new.set_defaults(run=_keys_new)
    hash_ = key_commands.add_parser("hash", help="print the sha256 of a key, for [[keys]] sha256")
    hash_.add_argument("key")
    hash_.set_defaults(run=_keys_hash)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: $TOLLGATE_CONFIG, else ./config.toml)")


def _date(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def recorded_store(url: str) -> Store | None:
    """The store a read-only command reads; None, said on stderr, when its SQLite file does not exist.

    Opening it would create an empty database there, and the command would report an empty
    table as if nothing had been recorded anywhere.
    """
    from proxy.recording.store import Store, sqlite_file

    path = sqlite_file(url)
    if path is not None and not path.exists():
        sys.stderr.write(f"tollgate: no database at {path} yet: nothing has been recorded there\n")
        return None
    store = Store(url)
    store.create_tables()
    return store


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from proxy.app import create_app

    config = load_config(args.config)
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    workers = args.workers or config.server.workers
    options = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        # Tollgate does not trust X-Forwarded-For; parsing it costs on every request.
        "proxy_headers": False,
        # The provider's Date and Server headers pass through; uvicorn must not add its own.
        "server_header": False,
        "date_header": False,
        "log_level": os.environ.get("TOLLGATE_LOG_LEVEL", "info").lower(),
        "timeout_graceful_shutdown": 30,
    }
    # uvicorn shuts down gracefully on SIGTERM (in-flight requests finish, the recorder flushes),
    # then re-raises the signal to the handler that was there before it: make that an exit with status 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    if workers > 1:
        # Each worker process builds its own app from the same file.
        if args.config:
            os.environ["TOLLGATE_CONFIG"] = str(Path(args.config).resolve())
        uvicorn.run("proxy.app:app_from_environment", factory=True, workers=workers, **options)  # type: ignore[arg-type]
    else:
        uvicorn.run(create_app(config), **options)  # type: ignore[arg-type]
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _usage(args: argparse.Namespace) -> int:
    from pricing import decimal_text
    from proxy.recording.reports import usage_report

    config = load_config(args.config)
    store = recorded_store(config.database.url)
    if store is None:
        return 1
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
    _print_table(table)
    return 0


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
    _print_table(rows, left=4)
    return 0


def _print_table(rows: Sequence[Sequence[str]], left: int = 1) -> None:
    """Aligned columns: the first ``left`` to the left, the rest to the right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        sys.stdout.write("  ".join(cells).rstrip() + "\n")


def _export_usage(args: argparse.Namespace) -> int:
    from proxy.recording.export import iter_usage, write_csv, write_jsonl

    store = recorded_store(load_config(args.config).database.url)
    if store is None:
        return 1
    rows = iter_usage(store, args.since, args.until)
    if args.format == "csv":
        write_csv(rows, sys.stdout)
    else:
        sys.stdout.flush()
        write_jsonl(rows, sys.stdout.buffer)
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


def _prices(args: argparse.Namespace) -> int:
    from pricing import Catalog

    config = load_config(args.config)
    catalog = Catalog.load(config.pricing_models)
    sys.stdout.write(catalog.describe(args.model) + "\n")
    return 0 if catalog.lookup(args.model) is not None else 1


def _keys_new(args: argparse.Namespace) -> int:
    from proxy.keys import hash_key, new_key

    key = new_key()
    lines = [f"# key: {key}", "[[keys]]", f'name = "{args.name}"', f'sha256 = "{hash_key(key)}"']
    if args.user:
        lines.append(f'user = "{args.user}"')
    if args.team:
        lines.append(f'team = "{args.team}"')
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _keys_hash(args: argparse.Namespace) -> int:
    from proxy.keys import hash_key

    sys.stdout.write(hash_key(args.key) + "\n")
    return 0
