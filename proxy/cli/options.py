"""The options and argument types that several ``tollgate`` commands share."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

FILTERS = ("user", "team", "agent", "thread", "model")


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` to a command's parser."""
    parser.add_argument("--config", help="config file (default: $TOLLGATE_CONFIG, else ./config.toml)")


def add_usage_filters(parser: argparse.ArgumentParser) -> None:
    """Add the filters that ``usage`` and every export share: who, what, which tags, and when."""
    for name in FILTERS:
        parser.add_argument(f"--{name}", help=f"only this {name}")
    parser.add_argument(
        "--tag",
        action="append",
        type=tag_filter,
        default=[],
        metavar="NAME=VALUE",
        help="only rows with this tag value (repeat for several, all must match)",
    )
    parser.add_argument("--since", type=parse_date, help="from this date or time (UTC, inclusive)")
    parser.add_argument("--until", type=parse_date, help="up to this date or time (UTC, exclusive)")


def window_is_possible(args: argparse.Namespace) -> bool:
    """False, said on stderr, when ``--since`` is not before ``--until``: such a window holds no row."""
    from proxy.recording.reports import empty_window

    problem = empty_window(args.since, args.until)
    if problem is not None:
        sys.stderr.write(f"tollgate: {problem.replace('since ', '--since ').replace('until ', '--until ')}\n")
        return False
    return True


def parse_date(text: str) -> datetime:
    """An argument type: an ISO date or time, taken as UTC when it names no zone."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def tag_filter(text: str) -> tuple[str, str]:
    """An argument type: ``name=value``."""
    from proxy.recording.reports import parse_tag_filter

    try:
        return parse_tag_filter(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def group_choice(text: str) -> str:
    """An argument type: a report group, or ``tag:<name>``."""
    from proxy.recording.reports import check_group

    try:
        check_group(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.lower() if text.lower().startswith("tag:") else text
