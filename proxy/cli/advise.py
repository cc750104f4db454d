"""``tollgate advise``: measured opportunities to spend less, with the dollars at stake over a period."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from proxy.cli.options import parse_date
from proxy.cli.store import recorded_store
from proxy.config import load_config

if TYPE_CHECKING:
    from proxy.recording.store import Store

_TITLES = {
    "cache": "Prompt caching (per agent and model)",
    "smaller_model": "Short answers on flagship models",
    "top_threads": "Most expensive threads",
    "top_agents": "Most expensive agents",
    "refused_uncapped": "Requests refused near a limit (no output cap)",
    "failed_billed": "Failed requests that were billed",
    "retries": "Retries after a failure",
}
DEFAULT_DAYS = 30


def add_advise_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: Callable[[argparse.ArgumentParser], object],
) -> None:
    """Add ``advise``; ``config_option`` adds ``--config`` to a parser."""
    advise = commands.add_parser("advise", help="measured opportunities to spend less")
    config_option(advise)
    advise.add_argument(
        "--since", type=parse_date, help=f"from this date or time (UTC; default {DEFAULT_DAYS} days ago)"
    )
    advise.add_argument("--until", type=parse_date, help="up to this date or time (UTC, exclusive; default now)")
    advise.add_argument("--team", help="only this team's requests")
    advise.add_argument("--json", action="store_true", help="print JSON: each opportunity names its query")
    advise.set_defaults(run=_advise)


def _advise(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = recorded_store(config.database.url)
    if store is None:
        return 1
    until = args.until or datetime.now(UTC)
    since = args.since or until - timedelta(days=DEFAULT_DAYS)
    print_advice(config.pricing_models, store, since, until, args.team, args.json)
    store.dispose()
    return 0


def print_advice(
    prices: Mapping[str, Mapping[str, Any]],
    store: Store,
    since: datetime,
    until: datetime,
    team: str | None,
    as_json: bool,
) -> None:
    """Print the advice for the period: a text report, or JSON whose every item names its query."""
    from pricing import Catalog, decimal_text
    from proxy.insight.advice import advise, totals_by_kind

    catalog = Catalog.load(prices)
    advice = advise(store, catalog, since, until, team)
    if as_json:
        body = {
            "since": _iso(advice.since),
            "until": _iso(advice.until),
            "team": advice.team,
            "spent_usd": decimal_text(advice.spent_usd),
            "requests": advice.requests,
            "opportunities": [o.as_json() for o in advice.opportunities],
        }
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    scope = f"team {team}" if team else "all teams"
    sys.stdout.write(
        f"Cost advice for {_iso(since)} to {_iso(until)} ({scope}): "
        f"${advice.spent_usd:,.2f} over {advice.requests:,} requests\n"
    )
    totals = totals_by_kind(advice.opportunities)
    for kind, title in _TITLES.items():
        found = [o for o in advice.opportunities if o.kind == kind]
        if not found:
            continue
        stake = "" if kind.startswith("top_") else f" - up to ${totals[kind]:,.2f}"
        sys.stdout.write(f"\n{title}{stake}\n")
        for o in found:
            sys.stdout.write(f"  - {o.text}\n")
    if not advice.opportunities:
        sys.stdout.write("\nNothing to advise: no priced usage in the period.\n")


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="minutes").replace("+00:00", "Z")
