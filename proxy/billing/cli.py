"""``tollgate invoices generate|list|show|export``: invoices from the command line (and cron).

``python -m proxy.billing.cli invoices ...`` runs the same commands on their own.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.billing.export import EXPORT_FORMATS, export_invoices, select_invoices
from proxy.billing.invoice import STATUSES
from proxy.billing.periods import parse_period, previous_period
from proxy.billing.queries import correct_invoices, generate_invoices, get_invoice, list_invoices
from proxy.billing.settings import settings_from_config
from proxy.billing.text import invoice_text, summary_line
from proxy.config import Config, ConfigError, load_config
from proxy.recording.store import Store

if TYPE_CHECKING:
    from pricing import Catalog

logger = logging.getLogger("tollgate.invoices")


def add_invoice_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: Callable[[argparse.ArgumentParser], object],
) -> None:
    """Add ``invoices`` and its actions; ``config_option`` adds ``--config`` to a parser."""
    from proxy.cli.options import add_usage_filters  # here: the proxy.cli package imports this module

    invoices = subparsers.add_parser("invoices", help="generate, list, show and export invoices")
    actions = invoices.add_subparsers(required=True, metavar="ACTION")

    generate = actions.add_parser("generate", help="create the missing invoices of a month (safe to re-run)")
    config_option(generate)
    generate.add_argument("--period", type=_period, help="YYYY-MM, UTC (default: last month)")
    generate.set_defaults(run=_generate)

    correct = actions.add_parser(
        "correct",
        help="issue corrected invoices for a month whose rows changed (after a reprice); issued ones stay",
        description="Rebuild each invoice of the month from its rows as they are now; where the figures differ, "
        "issue a new invoice (<id>-r<n>) that names the one it corrects. Issued invoices are never changed.",
    )
    config_option(correct)
    correct.add_argument("--period", type=_period, required=True, help="YYYY-MM, UTC")
    correct.add_argument("--entity", help="only this user's (or team's) invoice")
    correct.set_defaults(run=_correct)

    list_ = actions.add_parser("list", help="list invoices")
    config_option(list_)
    list_.add_argument("--period", type=_period, help="only this month (YYYY-MM)")
    list_.add_argument("--status", choices=STATUSES, help="only invoices with this status")
    list_.add_argument("--json", action="store_true", help="print JSON (money as decimal strings)")
    list_.set_defaults(run=_list)

    show = actions.add_parser("show", help="show one invoice with its lines")
    config_option(show)
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="print JSON (money as decimal strings)")
    show.set_defaults(run=_show)

    preview = actions.add_parser(
        "preview",
        help="show what this month's invoices would be now (nothing is stored)",
        description="Build the running month's invoices from its usage so far, as generation would, "
        "and print them. Nothing is stored.",
    )
    config_option(preview)
    preview.add_argument(
        "--period", default="running", help="running (this month, the default) or a month YYYY-MM not yet invoiced"
    )
    preview.add_argument("--entity", help="only this user's (or team's) invoice")
    preview.add_argument("--json", action="store_true", help="print JSON (money as decimal strings)")
    preview.set_defaults(run=_preview)

    mark = actions.add_parser("mark", help="set an invoice's status: paid, failed or void (amounts never change)")
    config_option(mark)
    mark.add_argument("id", help="the invoice id, e.g. inv_2026-11_user_alice")
    mark.add_argument("status", choices=("paid", "failed", "void", "pending"), help="the new status")
    mark.set_defaults(run=_mark)

    export = actions.add_parser(
        "export",
        help="write invoices as CSV (one row per line), a JSON array or JSON lines",
        description="Write invoices. --user/--team pick the invoiced entity, --since/--until the months that "
        "overlap the window, --model/--agent only those lines. Invoices keep no threads or tags: "
        "--thread and --tag are refused (`tollgate export usage` has them).",
    )
    config_option(export)
    export.add_argument("--format", choices=EXPORT_FORMATS, default="json", help="output format (default: json)")
    export.add_argument("--period", type=_period, help="only this month (YYYY-MM)")
    add_usage_filters(export)
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")
    export.set_defaults(run=_export)


def _period(text: str) -> str:
    try:
        parse_period(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _open_store(args: argparse.Namespace) -> Store | None:
    """The store to read invoices from; None (said on stderr) when its SQLite file does not exist yet."""
    from proxy.cli.store import recorded_store  # here: the proxy.cli package imports this module

    return recorded_store(load_config(args.config).database.url)


def _prices(config: Config) -> Catalog | None:
    from pricing import Catalog

    try:
        return Catalog.load(config.pricing_models)
    except FileNotFoundError:
        logger.warning("no price map (is litellm installed?): model lines will have no unit prices")
        return None


def _generate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = Store(config.database.url)
    store.create_tables()
    now = datetime.now(UTC)
    try:
        result = generate_invoices(
            store, settings_from_config(config), args.period or previous_period(now), now, prices=_prices(config)
        )
    except ValueError as exc:
        sys.stderr.write(f"tollgate: {exc}\n")
        return 2
    finally:
        store.dispose()
    for invoice in result.created:
        sys.stdout.write(f"created {summary_line(invoice)}\n")
    sys.stdout.write(f"{result.period}: {len(result.created)} created, {len(result.skipped)} already there\n")
    return 0


def _correct(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = _open_store(args)
    if store is None:
        return 1
    try:
        made = correct_invoices(
            store, settings_from_config(config), args.period, datetime.now(UTC), prices=_prices(config),
            entity_id=args.entity,
        )  # fmt: skip
    finally:
        store.dispose()
    for invoice in made:
        sys.stdout.write(f"created {summary_line(invoice)}, correcting {invoice.corrects}\n")
    sys.stdout.write(f"{args.period}: {len(made)} corrected\n")
    return 0


def _list(args: argparse.Namespace) -> int:
    store = _open_store(args)
    if store is None:
        return 1
    found = list_invoices(store, period=args.period, status=args.status)
    store.dispose()
    if args.json:
        sys.stdout.write(export_invoices(found, "json"))
    else:
        sys.stdout.write("".join(summary_line(invoice) + "\n" for invoice in found) or "no invoices\n")
    return 0


def _show(args: argparse.Namespace) -> int:
    store = _open_store(args)
    if store is None:
        return 1
    invoice = get_invoice(store, args.id)
    store.dispose()
    if invoice is None:
        sys.stderr.write(f"tollgate: no invoice {args.id!r}\n")
        return 1
    if args.json:
        sys.stdout.write(export_invoices([invoice], "json"))
        return 0
    sys.stdout.write(invoice_text(invoice))
    return 0


def _preview(args: argparse.Namespace) -> int:
    import orjson

    from proxy.billing.preview import NOT_STORED, preview_invoices

    config = load_config(args.config)
    store = _open_store(args)
    if store is None:
        return 1
    try:
        preview = preview_invoices(
            store,
            settings_from_config(config),
            datetime.now(UTC),
            period=args.period,
            entity_id=args.entity,
            prices=_prices(config),
        )
    except ValueError as exc:
        sys.stderr.write(f"tollgate: {exc}\n")
        return 2
    finally:
        store.dispose()
    if args.json:
        sys.stdout.write(orjson.dumps(preview.as_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    as_of = f"{preview.as_of:%Y-%m-%d %H:%M}Z"
    sys.stdout.write(f"PREVIEW of {preview.period} as of {as_of}. {NOT_STORED}\n")
    if not preview.invoices:
        sys.stdout.write("no usage to invoice in this period yet\n")
    for invoice in preview.invoices:
        sys.stdout.write("\n" + invoice_text(invoice))
    return 0


def _mark(args: argparse.Namespace) -> int:
    from proxy.billing.queries import InvoiceNotFound, set_status

    store = _open_store(args)
    if store is None:
        return 1
    try:
        invoice = set_status(store, args.id, args.status, datetime.now(UTC))
    except InvoiceNotFound:
        sys.stderr.write(f"tollgate: no invoice {args.id!r}\n")
        return 1
    except ValueError as exc:
        sys.stderr.write(f"tollgate: {exc}\n")
        return 2
    finally:
        store.dispose()
    sys.stdout.write(f"{summary_line(invoice)}\n")
    return 0


def _export(args: argparse.Namespace) -> int:
    if args.thread is not None or args.tag:
        sys.stderr.write(
            "tollgate: invoices keep no threads or tags; `tollgate export usage --thread ... --tag ...` has them\n"
        )
        return 2
    from proxy.cli.options import window_is_possible

    if not window_is_possible(args):
        return 2
    store = _open_store(args)
    if store is None:
        return 1
    found = select_invoices(
        list_invoices(store, period=args.period),
        user=args.user,
        team=args.team,
        since=args.since,
        until=args.until,
        model=args.model,
        agent=args.agent,
    )
    text = export_invoices(found, args.format)
    store.dispose()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8", newline="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tollgate")
    add_invoice_commands(
        parser.add_subparsers(required=True, metavar="COMMAND"),
        lambda p: p.add_argument("--config", help="config file (default: $TOLLGATE_CONFIG, else ./config.toml)"),
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        sys.stderr.write(f"tollgate: invalid config: {exc}\n")
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
