"""``tollgate prices``: a model's prices and where they come from; ``prices versions`` and ``prices import FILE``.

One subcommand-like word keeps ``tollgate prices MODEL`` as it always was: ``versions`` and ``import`` are
the words a model name never is.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.cli.options import parse_date
from proxy.config import load_config

if TYPE_CHECKING:
    from pricing import Catalog
    from proxy.config import Config

_USAGE = "tollgate prices MODEL [--provider KIND] [--version V] | versions | import FILE [--effective DATE]"


def add_prices_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: Callable[[argparse.ArgumentParser], object],
) -> None:
    """Add ``prices``; ``config_option`` adds ``--config`` to a parser."""
    prices = commands.add_parser(
        "prices",
        usage=_USAGE,
        help="show a model's prices and where they come from; list or import price versions",
        description="`prices MODEL` shows the prices in force now; `prices versions` lists the imported price "
        "versions; `prices import FILE` imports a litellm-format map or a price sheet as a new version.",
    )
    config_option(prices)
    prices.add_argument("words", nargs="+", metavar="MODEL | versions | import FILE")
    prices.add_argument(
        "--provider",
        choices=("openai", "anthropic", "gemini", "azure", "vertex_ai", "bedrock"),
        help="the provider that serves it: gemini, azure, vertex_ai and bedrock are priced by their own entries first",
    )
    prices.add_argument("--version", type=int, help="show the prices of this imported version (0: the config's)")
    prices.add_argument(
        "--effective", type=parse_date, help="import: in force from this date or time (UTC; default: now)"
    )
    prices.set_defaults(run=_prices)


def _prices(args: argparse.Namespace) -> int:
    words = args.words
    if words == ["versions"]:
        return _versions(args)
    if words[0] == "import":
        if len(words) != 2:
            sys.stderr.write(f"usage: {_USAGE}\ntollgate prices import: name one FILE\n")
            return 2
        return _import(args, Path(words[1]))
    if len(words) != 1:
        sys.stderr.write(f"usage: {_USAGE}\n")
        return 2
    return _describe(args, words[0])


def _describe(args: argparse.Namespace, model: str) -> int:
    from pricing import describe_for_kind, lookup_for_kind

    config = load_config(args.config)
    catalog = _catalog(config, args.version)
    if catalog is None:
        return 1
    sys.stdout.write(describe_for_kind(catalog, model, args.provider) + "\n")
    return 0 if lookup_for_kind(catalog, model, args.provider) is not None else 1


def _catalog(config: Config, version: int | None) -> Catalog | None:
    """The catalog of ``version``, or the one in force now; the config's alone when no database exists yet."""
    from pricing import Catalog
    from proxy.clock import system_clock
    from proxy.recording.prices import load_history
    from proxy.recording.sqlite import sqlite_file
    from proxy.recording.store import Store

    base = Catalog.load(config.pricing_models)
    path = sqlite_file(config.database.url)
    if path is not None and not path.exists():  # nothing imported yet: opening it would create an empty one
        if version:
            sys.stderr.write(f"tollgate: no database at {path}, so no price version {version}\n")
            return None
        return base
    store = Store(config.database.url)
    try:
        store.create_tables()
        history = load_history(store, base)
    finally:
        store.dispose()
    if version is None:
        return history.at(system_clock())[1]
    if version and version not in history:
        sys.stderr.write(f"tollgate: no price version {version}; `tollgate prices versions` lists them\n")
        return None
    return history.catalog(version or None)


def _versions(args: argparse.Namespace) -> int:
    from proxy.cli.store import recorded_store
    from proxy.cli.table import print_table
    from proxy.clock import system_clock
    from proxy.recording.prices import list_versions

    config = load_config(args.config)
    store = recorded_store(config.database.url)
    if store is None:
        return 1
    try:
        versions = list_versions(store)
    finally:
        store.dispose()
    now = system_clock()
    in_force = max((v.id for v in versions if v.effective_at <= now), default=None)
    rows = [("version", "effective", "imported", "kind", "models", "source", "")]
    rows.append(("0", "-", "-", "config", "-", "the config's price map and [pricing.models]", _mark(in_force is None)))
    rows += [
        (
            str(v.id),
            _time(v.effective_at),
            _time(v.imported_at),
            v.kind,
            str(v.models),
            v.source,
            _mark(v.id == in_force),
        )
        for v in versions
    ]
    print_table(rows, left=0)
    return 0


def _import(args: argparse.Namespace, path: Path) -> int:
    from pricing import PriceFileError, read_price_file
    from proxy.clock import system_clock
    from proxy.recording.prices import import_version
    from proxy.recording.store import Store

    config = load_config(args.config)
    try:
        prices = read_price_file(path)
    except OSError as exc:
        sys.stderr.write(f"tollgate: cannot read {path}: {exc.strerror or exc}\n")
        return 1
    except PriceFileError as exc:
        sys.stderr.write(f"tollgate: {exc}\n")
        return 1
    now = system_clock()
    effective = args.effective or now
    store = Store(config.database.url)
    try:
        store.create_tables()
        version = import_version(store, prices, str(path), effective, now)
    finally:
        store.dispose()
    sys.stdout.write(
        f"price version {version}: {len(prices.entries)} models from {path} ({prices.kind}), "
        f"in force from {_time(effective)}\n"
        "rows keep the prices they were recorded with; running servers take it at their next reload (SIGHUP)\n"
    )
    return 0


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _mark(in_force: bool) -> str:
    return "in force" if in_force else ""
