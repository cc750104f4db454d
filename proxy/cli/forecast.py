"""``tollgate usage --forecast``: month-end projections and the date each limit will be reached."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal

import orjson

from proxy.cli.table import print_table
from proxy.clock import Clock, system_clock
from proxy.config import Config
from proxy.insight.forecast import Projection, Rates, forecast_limits, forecast_report
from proxy.insight.money import dollars
from proxy.limits.ledger import Ledger
from proxy.limits.rules import LimitBook, compile_rules
from proxy.limits.state import limit_states
from proxy.recording.store import Store

CENT = Decimal("0.01")


def print_forecast(
    config: Config, store: Store, user: str | None, team: str | None, as_json: bool, clock: Clock = system_clock
) -> int:
    now = clock()
    book = LimitBook(compile_rules(config.limits))
    states = limit_states(book, Ledger(store, holder="cli"), now, user, team)
    if as_json:
        body = forecast_report(store, states, now, user, team)
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    rates = Rates(store, now)
    users = rates.projections("user", user) if team is None else []
    teams = rates.projections("team", team) if user is None else []
    total = rates.projections(None) if user is None and team is None else []
    limits = forecast_limits(states, rates)
    sys.stdout.write(f"Month-end projection at {_minute(now)}: month so far + 7-day daily rate x days left\n\n")
    table: list[tuple[str, ...]] = [("scope", "id", "month_so_far", "daily_rate", "days_left", "projected")]
    table += [_line("user", p) for p in users] + [_line("team", p) for p in teams] + [_line("total", p) for p in total]
    print_table(table, left=2)
    if limits:
        sys.stdout.write("\n")
        rows: list[tuple[str, ...]] = [("limit", "window", "spent", "max_usd", "daily_rate", "reached")]
        for f in limits:
            s = f.state
            when = "reached" if f.already else (_minute(f.reached_at) if f.reached_at else "not this window")
            rate = "unknown" if f.daily_rate is None else _money(f.daily_rate)
            label = f"{s.scope} {s.id}"
            rows.append((label, f"{s.window} {s.window_label}", _money(s.spent), _money(s.limit), rate, when))
        print_table(rows, left=2)
    return 0


def _line(scope: str, p: Projection) -> tuple[str, ...]:
    name = "" if scope == "total" else p.group
    return (scope, name, _money(p.month_so_far), _money(p.daily_rate), f"{p.days_left:.2f}", _money(p.projected))


def _money(amount: Decimal) -> str:
    return dollars(amount)


def _minute(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
