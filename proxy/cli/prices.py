"""``tollgate prices MODEL``: the prices Tollgate uses for a model, and where they come from."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from proxy.config import load_config


def add_prices_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: Callable[[argparse.ArgumentParser], object],
) -> None:
    """Add ``prices``; ``config_option`` adds ``--config`` to a parser."""
    prices = commands.add_parser("prices", help="show the prices used for a model, and where they come from")
    config_option(prices)
    prices.add_argument("model")
    prices.add_argument(
        "--provider",
        choices=("openai", "anthropic", "gemini", "azure"),
        help="the provider kind that serves it: gemini and azure are priced by their own map entries first",
    )
    prices.set_defaults(run=_prices)


def _prices(args: argparse.Namespace) -> int:
    from pricing import Catalog, priced_name

    config = load_config(args.config)
    catalog = Catalog.load(config.pricing_models)
    name = priced_name(args.model, args.provider)
    sys.stdout.write(catalog.describe(name) + "\n")
    return 0 if catalog.lookup(name) is not None else 1
