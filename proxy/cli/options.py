"""The options and argument types that several ``tollgate`` commands share."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` to a command's parser."""
    parser.add_argument("--config", help="config file (default: $TOLLGATE_CONFIG, else ./config.toml)")


def parse_date(text: str) -> datetime:
    """An argument type: an ISO date or time, taken as UTC when it names no zone."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
