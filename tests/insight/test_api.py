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
    assert summary["average_daily_cost_usd_this_month"] == "0.520000000000"  # 13 / 25 days
    assert [(lim["limit_usd"], lim["spent_usd"], lim["reached_at"]) for lim in summary["limits"]] == [
        ("40", "13", "2026-11-30T00:00:00Z")
    ]
