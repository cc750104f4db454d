"""The admin API carries the forecasts and the alerts, so the dashboard can show them."""

from __future__ import annotations

from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.clock import fixed_clock
from tests.conftest import make_config
from tests.fakeprovider import FakeProvider
from tests.insight.test_forecast import NOW, _store

ADMIN = {"authorization": "Bearer s3cret"}
LIMIT = '[[limits]]\nscope = "user"\nid = "bob"\nwindow = "month"\nmax_usd = "40"\n'


def test_the_user_summary_has_the_projection_and_the_limit_dates(provider: FakeProvider, db_url: str) -> None:
    _store(db_url)
    app = create_app(make_config(provider, db_url, LIMIT), admin_key="s3cret", clock=fixed_clock(NOW))
    with TestClient(app) as client:
        summary = client.get("/admin/users/bob/summary", headers=ADMIN).json()
    assert summary["forecast"]["daily_rate_usd"] == "6.000000000000"
    assert summary["forecast"]["projected_month_end_usd"] == "46.000000000000"
    assert summary["average_daily_cost_usd_this_month"] == "0.52"  # 13 / 25 days
    assert [(lim["limit_usd"], lim["spent_usd"], lim["reached_at"]) for lim in summary["limits"]] == [
        ("40", "13", "2026-11-30T00:00:00Z")
    ]


def test_the_forecast_route_gives_the_hand_computed_projections_and_limit_dates(
    provider: FakeProvider, db_url: str
) -> None:
    _store(db_url)
    app = create_app(make_config(provider, db_url, LIMIT), admin_key="s3cret", clock=fixed_clock(NOW))
    with TestClient(app) as client:
        forecast = client.get("/admin/forecast", headers=ADMIN).json()
        only_bob = client.get("/admin/forecast", params={"user": "bob"}, headers=ADMIN).json()
    assert forecast["now"] == "2026-11-25T12:00:00Z"
    # alice: 34 so far + $2 a day x 5.5 days = 45; bob: 13 + $6 x 5.5 = 46 (his rate over his 2 days).
    # In total: 47 so far, and the 7 days before today hold 14 + 12 = 26, so 47 + 26 / 7 x 5.5 = 67.4285714...
    projected = {p["group"]: p["projected_month_end_usd"] for p in forecast["users"]}
    assert projected == {"alice": "45.000000000000", "bob": "46.000000000000"}
    assert [p["group"] for p in forecast["teams"]] == ["research"]
    assert forecast["total"]["projected_month_end_usd"] == "67.428571428571"
    # bob's $40 month: 13 spent, $27 more at $6 a day is 4.5 days from noon on the 25th.
    assert [(lim["id"], lim["reached_at"]) for lim in forecast["limits"]] == [("bob", "2026-11-30T00:00:00Z")]
    assert ([p["group"] for p in only_bob["users"]], only_bob["teams"], only_bob["total"]) == (["bob"], [], None)
