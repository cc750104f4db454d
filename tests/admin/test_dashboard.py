"""The dashboard in a real headless Chromium: it renders the admin API's numbers, exactly.

Chromium is driven with its own command line (``--dump-dom``, ``--screenshot``), so no
browser-automation package is needed. The page reads the admin key from ``#key=...``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from proxy.admin.dashboard import dashboard_routes
from proxy.app import create_app
from tests.conftest import chat_completion, json_answer, make_config
from tests.fakeprovider import FakeProvider, ServerThread

KEY = "dashboard-test-key"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium: apt-get install chromium (.ci/run installs it)"
)
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"  # git-ignored
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


@pytest.fixture(scope="module")
def tollgate_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running proxy (with the dashboard added) that has metered ``CALLS``."""
    provider = FakeProvider()
    with ServerThread(provider) as fake:
        provider.port = fake.port
        db_url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'tollgate.db'}"
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
        for _ in range(500):  # the recorder writes in the background
            if sum(r["requests"] for r in _admin(url, "/admin/usage?group_by=user")["rows"]) == len(CALLS):
                return
            time.sleep(0.01)
        raise AssertionError("the recorder never wrote the calls")


def _admin(url: str, path: str) -> Any:
    response = httpx.get(url + path, headers={"authorization": f"Bearer {KEY}"})
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def board(tollgate_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The whole board's DOM once rendered, read by several tests."""
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


@pytest.mark.parametrize(
    ("name", "status"),
    [("dashboard.js", 200), ("dashboard.css", 200), ("dashboard.html", 404), ("..%2Fapp.py", 404), ("py.typed", 404)],
)
def test_only_the_pages_own_files_are_served(tollgate_url: str, name: str, status: int) -> None:
    response = httpx.get(f"{tollgate_url}/dashboard/{name}")
    assert response.status_code == status
    if status == 404:
        assert response.json()["error"]["type"] == "invalid_request_error"


@needs_chromium
def test_page_shows_each_top_spender_as_the_api_reports_it(tollgate_url: str, board: str) -> None:
    assert '<body data-state="ready">' in board
    tables = _tables(board)
    for group in ("user", "team", "agent", "model", "thread"):
        rows = _admin(tollgate_url, f"/admin/usage?group_by={group}")["rows"]
        shown = [[name, cost] for name, *_, cost in tables[f"top-{group}"][1:]]
        assert shown == [[r["group"] or "(none)", r["cost_usd"]] for r in rows]
    assert tables["top-user"][1][0] == "alice" and tables["top-user"][2][0] == "bob"
    assert '<a href="#user=alice">alice</a>' in board  # a click opens the drill-down below


@needs_chromium
def test_ids_are_shown_as_text_never_as_html(board: str) -> None:
    assert "&lt;b&gt;eve&lt;/b&gt;" in board
    assert "<b>" not in board


@needs_chromium
def test_page_shows_each_limit_with_its_state(tollgate_url: str, board: str) -> None:
    limits = _admin(tollgate_url, "/admin/limits")["limits"]
    shown = _tables(board)["limits"][1:]
    assert len(shown) == len(limits) >= 3  # alice, bob (per user, per day) and the global month
    for row, limit in zip(shown, limits, strict=True):
        assert row[:2] == [limit["scope"], limit["id"]]
        # Spent and limit are settled; held and remaining move as workers give back idle leases.
        assert [row[4], row[6]] == [limit["spent_usd"], limit["limit_usd"]]
        assert row[9] in ("ok", "near", "over", "blocking")


@needs_chromium
def test_spend_charts_draw_a_bar_per_day_and_month(tollgate_url: str, board: str) -> None:
    today = _admin(tollgate_url, "/admin/usage?group_by=day")["rows"][-1]
    charts = {
        kind: re.findall(r"<rect [^>]*>", part) for kind, part in re.findall(r'data-kind="(\w+)"(.*?)</svg>', board)
    }
    assert (len(charts["day"]), len(charts["month"])) == (30, 12)
    assert f'data-period="{today["group"]}"' in charts["day"][-1]
    assert f'data-cost="{today["cost_usd"]}"' in charts["day"][-1]


@needs_chromium
def test_missing_invoices_endpoint_reads_as_no_invoices_yet(board: str) -> None:
    assert re.search(r'id="invoices"[^>]*><p class="muted">No invoices yet.</p>', board)


@needs_chromium
def test_user_drill_down_shows_the_summary_and_models(tollgate_url: str, tmp_path: Path) -> None:
    dom = _dump_dom(f"{tollgate_url}/dashboard#key={KEY}&user=alice", tmp_path)
    summary = _admin(tollgate_url, "/admin/users/alice/summary")
    models = _admin(tollgate_url, "/admin/usage?group_by=model&user=alice")["rows"]
    assert re.search(r'id="user-detail" data-state="ready"', dom)
    assert f"<dt>cost all time (USD)</dt><dd>{summary['all_time']['cost_usd']}</dd>" in dom
    assert f"<dd>{summary['average_daily_cost_usd_this_month']}</dd>" in dom
    shown = [[name, cost] for name, *_, cost in _tables(dom)["user-models"][1:]]
    assert shown == [[r["group"], r["cost_usd"]] for r in models] and len(shown) == 2


@needs_chromium
def test_wrong_key_asks_again_and_shows_no_numbers(tollgate_url: str, tmp_path: Path) -> None:
    dom = _dump_dom(f"{tollgate_url}/dashboard#key=wrong", tmp_path)
    assert 'data-state="key"' in dom
    assert "The proxy refused that admin key." in dom
    assert "alice" not in dom and "<table" not in dom


@needs_chromium
def test_invoices_show_whatever_fields_they_carry(tmp_path: Path) -> None:
    invoice: dict[str, Any] = {"id": "inv-1", "entity_type": "team", "entity_id": "research", "period": "2026-01"}
    invoice |= {"total": "12.340000", "currency": "USD", "status": "draft", "lines": [{}, {}]}

    async def answer(request: Request) -> Response:
        body: dict[str, Any] = {"invoices": [invoice]} if request.url.path == "/admin/invoices" else {"rows": []}
        return JSONResponse(body | {"limits": []})

    stub = Starlette(routes=[*dashboard_routes(), Route("/admin/{path:path}", answer)])
    with ServerThread(stub) as server:
        dom = _dump_dom(f"http://127.0.0.1:{server.port}/dashboard#key={KEY}", tmp_path)
    shown = _tables(dom)["invoices"]
    assert shown[0] == ["id", "entity type", "entity id", "period", "total", "currency", "status", "lines"]
    assert shown[1] == ["inv-1", "team", "research", "2026-01", "12.340000", "USD", "draft", "2"]


@needs_chromium
def test_screenshot_of_the_board_is_kept_as_an_artefact(tollgate_url: str, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    picture = ARTIFACTS / "dashboard.png"
    picture.unlink(missing_ok=True)
    _chromium(
        f"{tollgate_url}/dashboard#key={KEY}&user=alice", tmp_path, f"--screenshot={picture}", "--window-size=1280,1600"
    )
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
