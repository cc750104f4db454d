"""The dashboard in a real headless Chromium: it renders the admin API's numbers, exactly.

Chromium is driven with its own command line (``--dump-dom``, ``--screenshot``), so no
browser-automation package is needed. The page reads the admin key from ``#key=...``.
"""

from __future__ import annotations

import dataclasses
import html
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from proxy.app import create_app
from proxy.insight.anomalies import Anomaly
from proxy.insight.history import claim_anomaly
from proxy.money import format_usd_column
from proxy.recording.store import Store
from tests.conftest import chat_completion, json_answer, make_config
from tests.fakeprovider import FakeProvider, ServerThread
from tests.recording.test_store import _BASE

KEY = "dashboard-test-key"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium: apt-get install chromium (.ci/run installs it)"
)
EXTRA = """
[pricing.models."metered-small"]
input = 1
output = 2
[pricing.models."metered-large"]
input = 3
output = 15

[[limits]]
scope = "user"
window = "day"
max_usd = "0.01"

[[limits]]
scope = "global"
window = "month"
max_usd = "5"
action = "warn"

[teams.research]
members = ["alice"]
"""
# (user, agent, thread, model, completion tokens): alice spends more than bob, on two models;
# the third user's id looks like HTML, as any client of the proxy may send.
CALLS = [
    ("alice", "planner", "t-1", "metered-large", 400),
    ("alice", "planner", "t-1", "metered-small", 100),
    ("alice", "coder", "t-2", "metered-large", 200),
    ("bob", "coder", "t-3", "metered-small", 50),
    ("<b>eve</b>", "coder", "t-4", "metered-small", 10),
]


class _Tables(HTMLParser):
    """Each table's rows of cell texts, keyed by the id of the element holding the table."""

    _VOID = {"meta", "link", "input", "br", "img", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._ids: list[str | None] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._VOID:
            return
        self._ids.append(dict(attrs).get("id"))
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in self._VOID:
            return
        self._ids.pop()
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            holder = next(i for i in reversed(self._ids) if i)
            self.tables.setdefault(holder, []).append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _tables(dom: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(dom)
    return parser.tables


def _chromium(url: str, profile: Path, *mode: str) -> str:
    """Chromium's output for ``url`` after the page settles (virtual time lets its fetches finish)."""
    assert CHROMIUM is not None
    flags = [
        "--headless",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
    ]
    done = subprocess.run([CHROMIUM, *flags, *mode, url], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def _dump_dom(url: str, profile: Path) -> str:
    return _chromium(url, profile, "--dump-dom")


OLD = datetime.now(UTC).replace(day=1, hour=12, minute=0, second=0, microsecond=0) - timedelta(days=3)
"""In last month: a row the period picker must find there and nowhere else."""


NOW = datetime.now(UTC)
RUNAWAY = Anomaly(
    kind="runaway",
    scope="thread",
    scope_id="t-loop",
    window=NOW.strftime("%Y-%m-%dT%H:%M"),
    since=NOW,
    time=NOW,
    cost_usd=Decimal("0.0123"),
    baseline_usd=None,
    requests=70,
    tokens=91_000,
    detail="70 requests in a minute",
)
SPIKE = dataclasses.replace(
    RUNAWAY, kind="spike", scope="user", scope_id="oldie", window=OLD.strftime("%Y-%m-%dT%H"), since=OLD, time=OLD
)
"""Last month's anomaly: the period picker shows it there, and not this month."""


def _seed(db_url: str) -> None:
    """Rows the proxy could not make here: one last month, one of a model with no price (today), one of
    another provider (today), and two anomalies, a runaway thread today and a spike last month."""
    store = Store(db_url)
    store.create_tables()
    with store.write_engine.begin() as conn:
        claim_anomaly(conn, store.dialect, RUNAWAY)
        claim_anomaly(conn, store.dialect, SPIKE)
    store.insert_records(
        [
            dataclasses.replace(
                _BASE,
                request_id="elsewhere",
                user_id="carol",
                provider="backup",
                model_requested="metered-small",
                cost_pico=2 * 10**8,
                started_at=datetime.now(UTC),
                ended_at=datetime.now(UTC),
            ),
            dataclasses.replace(
                _BASE, request_id="old", user_id="oldie", started_at=OLD, ended_at=OLD, cost_pico=7 * 10**9
            ),
            dataclasses.replace(
                _BASE,
                request_id="unpriced",
                user_id="carol",
                model_requested="my-unpriced",
                cost_pico=None,
                unpriced=True,
                started_at=datetime.now(UTC),
                ended_at=datetime.now(UTC),
            ),
        ]
    )
    store.dispose()


@pytest.fixture(scope="module")
def tollgate_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running proxy (with the dashboard added) that has metered ``CALLS``, and refused bob once."""
    provider = FakeProvider()
    with ServerThread(provider) as fake:
        provider.port = fake.port
        db_url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'tollgate.db'}"
        _seed(db_url)
        app = create_app(make_config(provider, db_url, EXTRA), admin_key=KEY)
        with ServerThread(app) as server:
            url = f"http://127.0.0.1:{server.port}"
            _make_calls(provider, url)
            yield url


def _make_calls(provider: FakeProvider, url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        for user, agent, thread, model, tokens in CALLS:
            provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion(completion_tokens=tokens)))
            body = orjson.dumps({"model": model, "max_tokens": 500, "messages": [{"role": "user", "content": "hi"}]})
            headers = {"x-user-id": user, "x-agent-name": agent, "x-thread-id": thread}
            assert client.post("/v1/chat/completions", content=body, headers=headers).status_code == 200
        # bob asks for more than his day's limit can hold: refused, so his limit reads refusing.
        big = orjson.dumps({"model": "metered-large", "max_tokens": 5000, "messages": []})
        assert client.post("/v1/chat/completions", content=big, headers={"x-user-id": "bob"}).status_code == 429
        for _ in range(3000):  # the recorder writes in the background (slowly on a busy machine)
            if sum(r["requests"] for r in _admin(url, "/admin/usage?group_by=user")["rows"]) == len(CALLS) + 4:
                return
            time.sleep(0.01)
        raise AssertionError("the recorder never wrote the calls")


def _admin(url: str, path: str) -> Any:
    response = httpx.get(url + path, headers={"authorization": f"Bearer {KEY}"})
    response.raise_for_status()
    return response.json()


def _this_month() -> str:
    today = datetime.now(UTC).date()
    start = today.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    return f"since={start}&until={end}"


@pytest.fixture(scope="module")
def board(tollgate_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The whole board's DOM once rendered (this month, the default period), read by several tests."""
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium: apt-get install chromium (.ci/run installs it)")
    return _dump_dom(f"{tollgate_url}/dashboard#key={KEY}", tmp_path_factory.mktemp("profile"))


def test_page_is_served_without_a_key_and_holds_no_data(tollgate_url: str) -> None:
    response = httpx.get(f"{tollgate_url}/dashboard")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "alice" not in response.text and "cost_usd" not in response.text
    script = httpx.get(f"{tollgate_url}/dashboard/dashboard.js").text
    assert "http://" not in script.replace("http://www.w3.org/2000/svg", "")  # no CDN, nothing fetched elsewhere


@pytest.mark.parametrize(
    ("name", "status"),
    [("dashboard.js", 200), ("dashboard.css", 200), ("dashboard.html", 404), ("..%2Fapp.py", 404), ("py.typed", 404)],
)
def test_only_the_pages_own_files_are_served(tollgate_url: str, name: str, status: int) -> None:
    response = httpx.get(f"{tollgate_url}/dashboard/{name}")
    assert response.status_code == status
    if status == 404:
        assert response.json()["error"]["type"] == "invalid_request_error"


def _costs(rows: list[dict[str, Any]]) -> list[str]:
    """The cost cells the page should show: one format per column, unpriced as unpriced."""
    texts = format_usd_column([Decimal(r["cost_usd"]) for r in rows])
    return [
        "unpriced"
        if r["unpriced_requests"] and Decimal(r["cost_usd"]) == 0
        else text + (f" + {r['unpriced_requests']} unpriced" if r["unpriced_requests"] else "")
        for r, text in zip(rows, texts, strict=True)
    ]


@needs_chromium
def test_page_shows_each_top_spender_as_the_api_reports_it_in_dollars(tollgate_url: str, board: str) -> None:
    assert re.search(r'<body data-state="ready"', board)
    tables = _tables(board)
    for group in ("user", "team", "agent", "model"):
        rows = _admin(tollgate_url, f"/admin/usage?group_by={group}&{_this_month()}")["rows"][:10]
        shown = [[name, cost] for name, *_, cost in tables[f"top-{group}"][1:]]
        assert shown == [[r["group"] or "(none)", c] for r, c in zip(rows, _costs(rows), strict=True)]
        assert all(c.startswith("$") or c == "unpriced" for _, c in shown)
    assert tables["top-user"][1][0] == "alice"
    assert re.search(r'<a href="#[^"]*user=alice[^"]*">alice</a>', board)  # a click opens the drill-down


@needs_chromium
def test_an_unpriced_model_is_shown_as_unpriced_never_as_zero(board: str) -> None:
    [row] = [row for row in _tables(board)["top-model"] if row[0] == "my-unpriced"]
    assert row[-1] == "unpriced"


@needs_chromium
def test_ids_are_shown_as_text_never_as_html(board: str) -> None:
    assert "&lt;b&gt;eve&lt;/b&gt;" in board
    assert "<b>eve" not in board


@needs_chromium
def test_limits_are_bars_with_their_state_and_a_refusing_one_reads_refusing(tollgate_url: str, board: str) -> None:
    limits = _admin(tollgate_url, "/admin/limits")["limits"]
    shown = re.findall(r'<div class="limit" data-state="(\w+)" data-scope="(\w+)" data-id="([^"]*)"', board)
    assert [(s, scope, html.unescape(i)) for s, scope, i in shown] == [
        (limit["state"], limit["scope"], limit["id"]) for limit in limits
    ]
    assert ("refusing", "user", "bob") in shown
    assert 'role="progressbar"' in board


@needs_chromium
def test_spend_is_drawn_per_day_stacked_by_model_with_axes_and_hover_values(board: str) -> None:
    today = datetime.now(UTC).date().isoformat()
    spend = re.search(r'data-kind="spend"(.*?)</svg>', board, re.S)
    assert spend is not None
    segments = re.findall(r'data-day="([^"]+)" data-series="([^"]+)"><title>([^<]*)</title>', spend.group(1))
    assert {series for day, series, _ in segments if day == today} >= {"metered-large", "metered-small"}
    assert any(title.startswith(f"{today} · metered-large: $") for *_, title in segments)
    assert re.search(r">\$0</text>", spend.group(1))  # a y axis in dollars
    assert 'data-kind="requests"' in board and 'data-kind="tokens"' in board


@needs_chromium
def test_spend_can_be_stacked_by_provider(tollgate_url: str, tmp_path: Path) -> None:
    dom = _dump_dom(f"{tollgate_url}/dashboard#key={KEY}&stack=provider", tmp_path)
    assert re.search(r'id="chart-spend" class="chart" data-stack="provider"', dom)
    assert re.search(r'data-stack="provider" aria-pressed="true"', dom)
    today = datetime.now(UTC).date().isoformat()
    spend = re.search(r'data-kind="spend"(.*?)</svg>', dom, re.S)
    assert spend is not None
    segments = re.findall(r'data-day="([^"]+)" data-series="([^"]+)"><title>([^<]*)</title>', spend.group(1))
    assert {series for day, series, _ in segments if day == today} == {"fake", "backup"}
    assert f"{today} · backup: $0.00020" in [title for *_, title in segments]


@needs_chromium
def test_the_periods_anomalies_are_listed_with_who_and_how_much(board: str) -> None:
    [header, *rows] = _tables(board)["anomalies"]
    assert header == ["when (UTC)", "kind", "scope", "who", "cost", "detail"]
    [cost] = format_usd_column([RUNAWAY.cost_usd])
    assert [row[1:] for row in rows] == [["runaway", "thread", "t-loop", cost, "70 requests in a minute"]]
    assert rows[0][0] == NOW.strftime("%Y-%m-%d %H:%M")


@needs_chromium
def test_a_period_change_changes_every_number(tollgate_url: str, board: str, tmp_path: Path) -> None:
    last = _dump_dom(f"{tollgate_url}/dashboard#key={KEY}&period=last-month", tmp_path)
    assert re.search(r'<body data-state="ready" data-period="last-month"', last)
    month = re.search(r'id="totals" class="cards" data-cost="([^"]+)"', board)
    before = re.search(r'id="totals" class="cards" data-cost="([^"]+)"', last)
    assert month is not None and before is not None
    assert before.group(1) == "0.007" != month.group(1)
    assert [row[0] for row in _tables(last)["top-user"][1:]] == ["oldie"]
    assert "alice" not in str(_tables(last)["top-user"])
    assert [row[1:4] for row in _tables(last)["anomalies"][1:]] == [["spike", "user", "oldie"]]


@needs_chromium
def test_the_running_months_invoice_preview_is_shown(tollgate_url: str, board: str) -> None:
    preview = _admin(tollgate_url, "/admin/invoices/preview")["invoices"]
    shown = _tables(board)["preview"][1:]
    assert [row[0] for row in shown] == [f"{i['entity_type']} {i['entity_id']}" for i in preview]
    assert all(row[3] == "preview" for row in shown)


@needs_chromium
def test_user_drill_down_shows_threads_agents_and_models(tollgate_url: str, tmp_path: Path) -> None:
    dom = _dump_dom(f"{tollgate_url}/dashboard#key={KEY}&user=alice", tmp_path)
    assert re.search(r'id="user-detail" data-state="ready"', dom)
    tables = _tables(dom)
    assert sorted(row[0] for row in tables["detail-a"][1:]) == ["t-1", "t-2"]
    assert sorted(row[0] for row in tables["detail-b"][1:]) == ["coder", "planner"]
    assert sorted(row[0] for row in tables["detail-c"][1:]) == ["metered-large", "metered-small"]


@needs_chromium
def test_team_drill_down_shows_its_users(tollgate_url: str, tmp_path: Path) -> None:
    dom = _dump_dom(f"{tollgate_url}/dashboard#key={KEY}&team=research", tmp_path)
    assert '<span id="detail-kind">Team</span>' in dom
    assert sorted(row[0] for row in _tables(dom)["detail-a"][1:]) == ["alice", "carol"]  # carol's row: _BASE's team


@needs_chromium
def test_thread_drill_down_shows_its_users_agents_and_models(tollgate_url: str, tmp_path: Path) -> None:
    dom = _dump_dom(f"{tollgate_url}/dashboard#key={KEY}&thread=t-1", tmp_path)
    assert re.search(r'id="user-detail" data-state="ready" data-kind="thread"', dom)
    tables = _tables(dom)
    assert [row[0] for row in tables["detail-a"][1:]] == ["alice"]
    assert [row[0] for row in tables["detail-b"][1:]] == ["planner"]
    assert sorted(row[0] for row in tables["detail-c"][1:]) == ["metered-large", "metered-small"]


@needs_chromium
def test_agent_drill_down_shows_its_users_and_threads(tollgate_url: str, tmp_path: Path) -> None:
    dom = _dump_dom(f"{tollgate_url}/dashboard#key={KEY}&agent=coder", tmp_path)
    assert '<span id="detail-kind">Agent</span>' in dom
    tables = _tables(dom)
    assert sorted(row[0] for row in tables["detail-a"][1:]) == ["<b>eve</b>", "alice", "bob"]
    assert sorted(row[0] for row in tables["detail-b"][1:]) == ["t-2", "t-3", "t-4"]


@needs_chromium
def test_wrong_key_asks_again_and_leaves_no_loading_behind(tollgate_url: str, tmp_path: Path) -> None:
    dom = _dump_dom(f"{tollgate_url}/dashboard#key=wrong", tmp_path)
    assert 'data-state="key"' in dom
    assert "The proxy refused that admin key" in dom
    assert "Loading" not in dom and "alice" not in dom and "<table" not in dom


@needs_chromium
@pytest.mark.parametrize("width", [1280, 390])
def test_the_board_fits_the_width_with_no_sideways_scroll(
    tollgate_url: str, tmp_path_factory: pytest.TempPathFactory, width: int
) -> None:
    folder = tmp_path_factory.mktemp(f"screens-{width}")
    url = f"{tollgate_url}/dashboard#key={KEY}&user=alice"
    dom = _chromium(url, folder / "profile", "--dump-dom", f"--window-size={width},2400")
    assert re.search(r'<body data-state="ready"[^>]*data-overflow="false"', dom)
    # Charts are drawn at the width they are shown at: their text stays at its 12 px on a phone too.
    text_px = re.search(r'data-chart-text="([0-9.]+)"', dom)
    assert text_px is not None and float(text_px.group(1)) >= 11.5
    picture = folder / f"dashboard-{width}.png"
    _chromium(url, folder / "profile2", f"--screenshot={picture}", f"--window-size={width},2400")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot kept at {picture}")
