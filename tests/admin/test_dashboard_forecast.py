"""The dashboard shows the forecasts: the month-end projection, and the date a limit will be reached.

The server runs on a fixed clock (25 November 2026, noon) over the forecast tests' hand-computed rows,
so the figures are known: bob's $40 month limit is reached on the 30th at midnight, and the month in
total is projected to end at $67.43.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.app import create_app
from proxy.clock import fixed_clock
from tests.admin.test_dashboard import KEY, _dump_dom, needs_chromium
from tests.conftest import make_config
from tests.fakeprovider import FakeProvider, ServerThread
from tests.insight.test_forecast import NOW, _store

LIMIT = '[[limits]]\nscope = "user"\nid = "bob"\nwindow = "month"\nmax_usd = "40"\n'


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    provider = FakeProvider()
    db_url = f"sqlite:///{tmp_path_factory.mktemp('forecast') / 'tollgate.db'}"
    _store(db_url).dispose()
    with ServerThread(provider) as fake:
        provider.port = fake.port
        app = create_app(make_config(provider, db_url, LIMIT), admin_key=KEY, clock=fixed_clock(NOW))
        with ServerThread(app) as server:
            yield f"http://127.0.0.1:{server.port}"


@needs_chromium
def test_a_limit_shows_when_it_will_be_reached_and_the_month_its_projected_end(url: str, tmp_path: Path) -> None:
    dom = _dump_dom(f"{url}/dashboard#key={KEY}", tmp_path)
    assert re.search(r'<body data-state="ready"', dom)
    # bob's is the only limit: his row ends with the date.
    assert re.search(r'data-id="bob">.*?>at this rate, reached about 2026-11-30 00:00 UTC</span></div>', dom, re.S)
    assert re.search(r"this month's projected end<b>\$67\.43</b>", dom)


@needs_chromium
def test_a_team_drill_down_shows_its_projection(url: str, tmp_path: Path) -> None:
    dom = _dump_dom(f"{url}/dashboard#key={KEY}&team=research", tmp_path)
    # research is alice: 34 so far, $2 a day, 45 by month end.
    facts = re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", dom)
    assert facts == [("cost this month", "$34.00"), ("recent daily cost", "$2.00"), ("projected month end", "$45.00")]
