"""Month-end projections, and the day each spend limit will be reached at the current rate.

The method, kept simple enough to check by hand (every figure comes from the daily rollups):

- **Month so far**: spend from the 1st of this UTC month until now.
- **Recent daily rate**: spend over the ``RATE_DAYS`` (7) full UTC days before today, divided
  by 7; for an entity first seen within those days, divided by the number of days since its
  first day instead (so that a user who started yesterday is not averaged with days before).
- **Projection**: month so far + rate x the days left in the month, counted from now to the
  1st of next month, fractions of a day included.
- **Limit reached**: a limit with ``spent`` of ``max_usd`` in its window is reached at
  now + (max_usd - spent) / rate, if that is before the window ends; never at a rate of 0.
  Rates are known for user, team, agent and global limits (the scopes the rollups keep);
  key and thread limits get no date.

Money is Decimal throughout, rounded once to the picodollar (12 places) for display.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from pricing import decimal_text, pico_to_usd
from proxy.insight.anomalies import Anomaly
from proxy.limits.state import LimitState
from proxy.recording.store import Store
from proxy.recording.tables import ROLLUPS_TABLE

RATE_DAYS = 7
PLACES = Decimal("1e-12")
_COLUMNS = {"user": "user_id", "team": "team_id", "agent": "agent"}


@dataclass(frozen=True, slots=True)
class Projection:
    """One entity's month: spent so far, its recent daily rate, and where that leads by month end."""

    group: str  # the user or team id, or "total"
    month_so_far: Decimal
    daily_rate: Decimal
    projected: Decimal
    days_left: Decimal

    def as_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "month_so_far_usd": decimal_text(self.month_so_far.quantize(PLACES)),
            "daily_rate_usd": decimal_text(self.daily_rate.quantize(PLACES)),
            "projected_month_end_usd": decimal_text(self.projected.quantize(PLACES)),
            "days_left": decimal_text(self.days_left.quantize(Decimal("0.0001"))),
        }


@dataclass(frozen=True, slots=True)
class LimitForecast:
    """When a limit will be reached at the current rate: ``reached_at`` None if not in this window."""

    state: LimitState
    daily_rate: Decimal | None  # None: no rate is kept for this scope
    reached_at: datetime | None
    already: bool  # spent is at the limit already

    def as_json(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in self.state.as_json().items() if k not in ("held_usd", "remaining_usd")},
            "daily_rate_usd": None if self.daily_rate is None else decimal_text(self.daily_rate.quantize(PLACES)),
            "reached_at": _iso(self.reached_at),
            "already_reached": self.already,
        }


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The UTC month ``now`` falls in: its first instant and the next month's."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def project(month_so_far: Decimal, recent: Decimal, days_of_rate: int, now: datetime, group: str) -> Projection:
    """The projection from the month's spend and the spend of the last ``days_of_rate`` full days."""
    rate = recent / days_of_rate if days_of_rate > 0 else Decimal(0)
    days_left = Decimal((month_bounds(now)[1] - now).total_seconds()) / 86400
    return Projection(group, month_so_far, rate, month_so_far + rate * days_left, days_left)


def reached_at(state: LimitState, rate: Decimal | None, now: datetime) -> LimitForecast:
    """When ``state``'s limit is reached at ``rate`` dollars a day (None if not before its window ends)."""
    if state.spent >= state.limit:
        return LimitForecast(state, rate, None, True)
    if rate is None or rate <= 0:
        return LimitForecast(state, rate, None, False)
    seconds = (state.limit - state.spent) / rate * 86400
    when = now + timedelta(seconds=float(seconds))
    if state.resets_at is not None and when >= state.resets_at:
        return LimitForecast(state, rate, None, False)
    return LimitForecast(state, rate, when, False)


class Rates:
    """The month so far and the recent daily rate of users, teams, agents and the total, from the daily rollups."""

    def __init__(self, store: Store, now: datetime) -> None:
        self.now = now
        today = now.astimezone(UTC).date()
        self._month = month_bounds(now)[0].date().isoformat()
        self._rate_from = (today - timedelta(days=RATE_DAYS)).isoformat()
        self._today = today.isoformat()
        self._store = store

    def projections(self, scope: str | None, only: str | None = None) -> list[Projection]:
        """One projection per user or team (``scope``), or the total (None); ``only`` keeps one entity."""
        r = ROLLUPS_TABLE.c
        group: sa.ColumnElement[Any] = r[_COLUMNS[scope]] if scope else sa.literal("total")
        spend = sa.func.sum(r.cost_pico)
        month = sa.select(group, spend).where(r.period == "day", r.period_start >= self._month).group_by(group)
        recent = (
            sa.select(group, spend)
            .where(r.period == "day", r.period_start >= self._rate_from, r.period_start < self._today)
            .group_by(group)
        )
        first = sa.select(group, sa.func.min(r.period_start)).where(r.period == "day").group_by(group)
        if scope and only is not None:
            month, recent, first = (q.where(r[_COLUMNS[scope]] == only) for q in (month, recent, first))
        with self._store.engine.connect() as conn:
            months = {g: int(c or 0) for g, c in conn.execute(month)}
            recents = {g: int(c or 0) for g, c in conn.execute(recent)}
            firsts = {g: d for g, d in conn.execute(first)}
        out = []
        for name in sorted(set(months) | set(recents)):
            if name == "":
                continue  # rows with no user (or team): counted in the total only
            days = self._days_of_rate(firsts.get(name))
            out.append(
                project(pico_to_usd(months.get(name, 0)), pico_to_usd(recents.get(name, 0)), days, self.now, name)
            )
        return sorted(out, key=lambda p: (-p.projected, p.group))

    def _days_of_rate(self, first_day: str | None) -> int:
        """RATE_DAYS, or fewer when the entity's first day falls within them."""
        if first_day is None or first_day <= self._rate_from:
            return RATE_DAYS
        days = (datetime.fromisoformat(self._today) - datetime.fromisoformat(first_day)).days
        return max(1, min(RATE_DAYS, days))

    def daily_rate(self, scope: str, subject: str) -> Decimal | None:
        """The recent daily rate of one limit's subject; None for the scopes the rollups do not keep."""
        if scope == "global":
            found = self.projections(None)
        elif scope in _COLUMNS:
            found = self.projections(scope, subject)
        else:
            return None
        return found[0].daily_rate if found else Decimal(0)


def forecast_limits(states: Sequence[LimitState], rates: Rates) -> list[LimitForecast]:
    """For each limit's state, when it will be reached at its subject's recent daily rate."""
    cache: dict[tuple[str, str], Decimal | None] = {}
    out = []
    for state in states:
        key = (state.scope, state.id)
        if key not in cache:
            cache[key] = rates.daily_rate(*key)
        out.append(reached_at(state, cache[key], rates.now))
    return out


def forecast_warnings(
    store: Store, states: Callable[[datetime], Sequence[LimitState]]
) -> Callable[[datetime], list[Anomaly]]:
    """The monitor's hourly check for ``[alerts] forecast_alert``: a limit projected to be reached in its window."""

    def check(now: datetime) -> list[Anomaly]:
        found = []
        for f in forecast_limits(states(now), Rates(store, now)):
            if f.reached_at is None or f.daily_rate is None:
                continue
            s = f.state
            found.append(
                Anomaly(
                    kind="forecast",
                    scope=s.scope,
                    scope_id=s.id,
                    window=f"{s.window} {s.window_label}"[:32],
                    since=now,
                    time=now,
                    cost_usd=s.spent,
                    baseline_usd=None,
                    requests=0,
                    tokens=0,
                    detail=(
                        f"at ${f.daily_rate:.2f} a day, the ${s.limit:.2f} {s.window} limit ({s.action}) will be "
                        f"reached around {_iso(f.reached_at)}, before the window ends"
                        + (f" at {_iso(s.resets_at)}" if s.resets_at else "")
                        + f"; ${s.spent:.2f} spent so far"
                    ),
                )
            )
        return found

    return check


def forecast_report(
    store: Store, states: Sequence[LimitState], now: datetime, user: str | None = None, team: str | None = None
) -> dict[str, Any]:
    """What ``tollgate usage --forecast --json`` and ``GET /admin/forecast`` give: the projections per user,
    per team and in total (only the user's or the team's when one is named), and each limit's date."""
    rates = Rates(store, now)
    users = rates.projections("user", user) if team is None else []
    teams = rates.projections("team", team) if user is None else []
    total = rates.projections(None) if user is None and team is None else []
    return {
        "now": _iso(now),
        "users": [p.as_json() for p in users],
        "teams": [p.as_json() for p in teams],
        "total": total[0].as_json() if total else None,
        "limits": [f.as_json() for f in forecast_limits(states, rates)],
    }
