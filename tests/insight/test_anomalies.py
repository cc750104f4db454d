"""Anomalies on synthetic histories, with the monitor's clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from proxy.config import AnomaliesConfig
from proxy.insight.anomalies import Baseline, Figures, Rules, baseline_of, judge_hour, nearest_rank, scope_medians
from proxy.insight.history import recorded_alerts
from proxy.insight.monitor import AnomalyMonitor
from proxy.limits.alerts import Notice
from proxy.recording.records import UsageRecord
from proxy.recording.store import Store
from tests.insight.history import open_store, row, write

NOW = datetime(2026, 11, 25, 14, 40, tzinfo=UTC)
HOUR = NOW.replace(minute=0)
SETTINGS = AnomaliesConfig(enabled=True, factor=Decimal(5), min_usd=Decimal(1), runaway_requests_per_minute=60)


def _steady(user: str, usd: str = "0.50", days: int = 14) -> list[UsageRecord]:
    """One request an hour at ``usd`` for ``days`` days before this hour."""
    return [row(HOUR - timedelta(hours=h), usd, user_id=user) for h in range(1, days * 24 + 1)]


def _monitor(store: Store, settings: AnomaliesConfig = SETTINGS) -> tuple[AnomalyMonitor, list[Notice]]:
    emitted: list[Notice] = []
    return AnomalyMonitor(open_store(store.url), settings, emitted.append), emitted


@pytest.mark.parametrize(
    ("values", "percentile", "expected"),
    [([], 95, 0), ([7], 95, 7), (list(range(1, 21)), 95, 19), (list(range(1, 21)), 50, 10), ([5, 1, 3], 100, 5)],
)
def test_nearest_rank_percentile(values: list[int], percentile: int, expected: int) -> None:
    assert nearest_rank(values, percentile) == expected


def test_idle_hours_are_left_out_of_the_baseline() -> None:
    hours = [Figures(1, 10, 100)] * 19 + [Figures(1, 50, 900)] + [Figures(0, 0, 0)] * 100
    assert baseline_of(hours, 95) == Baseline(cost_pico=100, tokens=10, hours=20)


def test_a_new_entity_is_judged_against_its_scope_median() -> None:
    medians = scope_medians({("user", "a"): Baseline(10, 1, 5), ("user", "b"): Baseline(30, 1, 5)})
    assert medians["user"] == Baseline(10, 1, 2)
    rules = Rules(min_pico=0, min_tokens=10**9)
    assert judge_hour(Figures(1, 1, 51), None, medians["user"], rules) == ("new", medians["user"])
    assert judge_hour(Figures(1, 1, 50), None, medians["user"], rules) is None
    assert judge_hour(Figures(1, 1, 51), None, None, rules) is None


def test_a_steady_user_with_one_spike_alerts_once(db_url: str) -> None:
    store = write(db_url, [*_steady("alice"), row(HOUR + timedelta(minutes=5), "10", user_id="alice")])
    monitor, _ = _monitor(store)
    found = monitor.check(NOW)
    assert [(a.kind, a.scope, a.scope_id, a.window) for a in found] == [("spike", "user", "alice", "2026-11-25T14")]
    assert found[0].cost_usd == Decimal(10) and found[0].baseline_usd == Decimal("0.5")
    assert "above 5x its usual hour ($0.50 and 13 tokens: the 95th percentile of its 336 active hours" in (
        found[0].detail
    )
    assert monitor.check(NOW + timedelta(minutes=5)) == []  # claimed already
    assert monitor.check(NOW + timedelta(hours=1)) == []  # the next hour, judged whole once more: still the one
    assert [a["kind"] for a in recorded_alerts(store)] == ["spike"]


def test_a_growing_user_under_the_factor_does_not_alert(db_url: str) -> None:
    # Spend grows 10% a day, from $0.50 to $1.90 an hour; this hour is twice the last one: under 5x.
    rows = [
        row(HOUR - timedelta(hours=h), str(round(Decimal("0.5") * Decimal("1.1") ** (14 - h // 24), 4)))
        for h in range(1, 14 * 24 + 1)
    ]
    rows.append(row(HOUR + timedelta(minutes=1), "3.80"))
    monitor, _ = _monitor(write(db_url, rows))
    assert monitor.check(NOW) == []


def test_a_spike_under_min_usd_does_not_alert(db_url: str) -> None:
    store = write(db_url, [*_steady("alice", "0.01"), row(HOUR, "0.90")])
    monitor, _ = _monitor(store)
    assert monitor.check(NOW) == []


def test_a_new_user_far_above_the_median_alerts(db_url: str) -> None:
    rows = [*_steady("bob"), *_steady("carol", "0.70"), row(HOUR + timedelta(minutes=2), "10", user_id="dave")]
    monitor, _ = _monitor(write(db_url, rows))
    found = monitor.check(NOW)
    assert [(a.kind, a.scope_id, a.baseline_usd) for a in found] == [("new", "dave", Decimal("0.5"))]


def test_a_runaway_thread_alerts_within_a_minute(db_url: str) -> None:
    # 70 requests on one thread in the 30 seconds before NOW: the next look, at most check_interval later, sees them.
    loop = [
        row(NOW - timedelta(seconds=30) + timedelta(milliseconds=400 * i), "0.01", thread_id="t-loop")
        for i in range(70)
    ]
    calm = [row(NOW - timedelta(seconds=30), "0.01", thread_id="t-calm")]
    monitor, _ = _monitor(write(db_url, loop + calm))
    found = monitor.check(NOW)
    assert [(a.kind, a.scope, a.scope_id) for a in found] == [("runaway", "thread", "t-loop")]
    assert found[0].requests == 70 and found[0].cost_usd == Decimal("0.70")
    assert "70 requests and 910 tokens in the minute 2026-11-25T14:39 UTC" in found[0].detail
    assert monitor.check(NOW + timedelta(seconds=15)) == []  # one alert per thread and hour


def test_two_workers_alert_once_between_them(any_db_url: str) -> None:
    store = write(any_db_url, [*_steady("alice"), row(HOUR + timedelta(minutes=5), "10")])
    first, _ = _monitor(store)
    second, _ = _monitor(store)
    found = first.check(NOW) + second.check(NOW)
    assert [(a.kind, a.scope_id) for a in found] == [("spike", "alice")]


def test_disabled_detection_finds_nothing(db_url: str) -> None:
    store = write(db_url, [*_steady("alice"), row(HOUR, "10")])
    monitor, _ = _monitor(store, AnomaliesConfig(enabled=False))
    assert monitor.check(NOW) == []


@pytest.mark.anyio
async def test_the_running_monitor_emits_what_it_claims(db_url: str) -> None:
    import asyncio

    store = write(db_url, [*_steady("alice"), row(HOUR + timedelta(minutes=5), "10")])
    emitted: list[Any] = []
    monitor = AnomalyMonitor(
        store, AnomaliesConfig(enabled=True, check_interval=0.01), emitted.append, clock=lambda: NOW
    )
    monitor.start()
    for _ in range(200):
        if emitted:
            break
        await asyncio.sleep(0.01)
    await monitor.close()
    assert [a.scope_id for a in emitted] == ["alice"]
