"""Month-end projections and limit dates, against figures worked out by hand on fixed data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from proxy.insight.forecast import Rates, forecast_limits, forecast_warnings, project
from proxy.limits.state import LimitState
from proxy.recording.records import UsageRecord
from proxy.recording.store import Store
from tests.insight.history import row, write

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)  # 5.5 days before December
DAY = timedelta(days=1)


def _fixture_rows() -> list[UsageRecord]:
    """alice (team research): $1 a day Nov 1-17, $2 a day Nov 18-24, $3 today. bob: $6 on Nov 23 and 24, $1 today."""
    nov = datetime(2026, 11, 1, 9, tzinfo=UTC)
    rows = [row(nov + n * DAY, "1", user_id="alice", team_id="research") for n in range(17)]
    rows += [row(nov + n * DAY, "2", user_id="alice", team_id="research") for n in range(17, 24)]
    rows.append(row(NOW - timedelta(hours=1), "3", user_id="alice", team_id="research"))
    rows += [row(datetime(2026, 11, d, 10, tzinfo=UTC), "6", user_id="bob") for d in (23, 24)]
    rows.append(row(NOW - timedelta(hours=2), "1", user_id="bob"))
    rows.append(row(datetime(2026, 10, 30, tzinfo=UTC), "100", user_id="alice"))  # last month: in no figure
    return rows


def _store(db_url: str) -> Store:
    return write(db_url, _fixture_rows())


def test_projection_is_month_so_far_plus_rate_times_days_left() -> None:
    p = project(Decimal(34), Decimal(14), 7, NOW, "alice")
    assert (p.daily_rate, p.days_left, p.projected) == (Decimal(2), Decimal("5.5"), Decimal(45))


def test_user_team_and_total_projections_match_the_hand_computed_figures(db_url: str) -> None:
    rates = Rates(_store(db_url), NOW)
    users = {p.group: p.as_json() for p in rates.projections("user")}
    # alice: 17 + 14 + 3 = 34 so far, 14 / 7 = 2 a day, 34 + 2 x 5.5 = 45.
    assert users["alice"] == {
        "group": "alice",
        "month_so_far_usd": "34.000000000000",
        "daily_rate_usd": "2.000000000000",
        "projected_month_end_usd": "45.000000000000",
        "days_left": "5.5000",
    }
    # bob, first seen Nov 23: 12 over 2 days = 6 a day; 13 + 6 x 5.5 = 46.
    assert (users["bob"]["daily_rate_usd"], users["bob"]["projected_month_end_usd"]) == (
        "6.000000000000",
        "46.000000000000",
    )
    assert [p.group for p in rates.projections("team")] == ["research"]
    assert rates.projections("team")[0].projected == Decimal(45)
    # Total: 47 so far; 26 over the 7 days = 3.714285714285...; 47 + 26/7 x 5.5 = 67.428571428571...
    total = rates.projections(None)[0].as_json()
    assert (total["month_so_far_usd"], total["projected_month_end_usd"]) == ("47.000000000000", "67.428571428571")


def _state(scope: str, id: str, limit: str, spent: str, window: str = "month") -> LimitState:
    return LimitState(
        scope=scope,
        id=id,
        window=window,
        window_label="2026-11",
        action="block",
        resets_at=datetime(2026, 12, 1, tzinfo=UTC),
        spent=Decimal(spent),
        held=Decimal(0),
        limit=Decimal(limit),
    )


def test_each_limit_gets_the_date_it_will_be_reached(db_url: str) -> None:
    states = [
        _state("user", "bob", "40", "13"),  # 27 left at 6 a day: 4.5 days, Nov 30 00:00
        _state("user", "alice", "50", "34"),  # 16 left at 2 a day: 8 days, after the month ends
        _state("user", "carol", "5", "5"),  # reached already
        _state("key", "ci", "5", "1"),  # no rate is kept for keys
    ]
    found = {f.state.id: f for f in forecast_limits(states, Rates(_store(db_url), NOW))}
    assert found["bob"].reached_at == datetime(2026, 11, 30, tzinfo=UTC)
    assert found["alice"].reached_at is None and not found["alice"].already
    assert found["carol"].already
    assert found["ci"].daily_rate is None and found["ci"].reached_at is None
    assert found["bob"].as_json()["reached_at"] == "2026-11-30T00:00:00Z"


def test_forecast_alert_names_the_limit_reached_early(db_url: str) -> None:
    store = _store(db_url)
    check = forecast_warnings(
        store, lambda now: [_state("user", "bob", "40", "13"), _state("user", "alice", "50", "34")]
    )
    warnings = check(NOW)
    assert [(w.kind, w.scope_id, w.window) for w in warnings] == [("forecast", "bob", "month 2026-11")]
    assert "at $6.00 a day, the $40.00 month limit (block) will be reached around 2026-11-30T00:00:00Z" in (
        warnings[0].detail
    )
