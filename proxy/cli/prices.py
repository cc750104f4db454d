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
        choices=("openai", "anthropic", "gemini", "azure", "vertex_ai", "bedrock"),
        help="the provider that serves it: gemini, azure, vertex_ai and bedrock are priced by their own entries first",
    )
    prices.set_defaults(run=_prices)


def _prices(args: argparse.Namespace) -> int:
    from pricing import Catalog, describe_for_kind, lookup_for_kind

    config = load_config(args.config)
    catalog = Catalog.load(config.pricing_models)
    sys.stdout.write(describe_for_kind(catalog, args.model, args.provider) + "\n")
    return 0 if lookup_for_kind(catalog, args.model, args.provider) is not None else 1
