"""The dashboard's drill-down takes any user id, and the page shows the admin API's own error messages."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.money import format_usd
from tests.admin.test_dashboard import KEY, _admin, _dump_dom, _tables, needs_chromium
from tests.conftest import chat_completion, json_answer, make_config
from tests.fakeprovider import FakeProvider, ServerThread

SLASHED = "acme/alice"  # ids are whatever a client sends: a tenant/user pair is common


def _serve(provider: FakeProvider, db_url: str, admin_key: str) -> ServerThread:
    return ServerThread(create_app(make_config(provider, db_url), admin_key=admin_key))


@pytest.fixture(scope="module")
def tollgate_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running proxy that has metered one request for a user whose id holds a slash."""
    provider = FakeProvider()
    with ServerThread(provider) as fake:
        provider.port = fake.port
        provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
        with _serve(provider, f"sqlite:///{tmp_path_factory.mktemp('ids') / 'tollgate.db'}", KEY) as server:
            url = f"http://127.0.0.1:{server.port}"
            body = orjson.dumps({"model": "gpt-4o-mini", "messages": []})
            assert httpx.post(f"{url}/v1/chat/completions", content=body, headers={"x-user-id": SLASHED}).is_success
            yield url


def _summary_once_recorded(url: str) -> dict[str, Any]:
    for _ in range(100):  # the recorder writes in the background
        summary: dict[str, Any] = _admin(url, "/admin/users/acme%2Falice/summary")
        if summary["all_time"] is not None:
            break
        time.sleep(0.02)
    return summary


def test_summary_route_takes_an_id_with_a_slash(tollgate_url: str) -> None:
    summary = _summary_once_recorded(tollgate_url)
    assert summary["user"] == SLASHED and summary["all_time"]["requests"] == 1


def test_summary_route_still_ends_in_summary(provider: FakeProvider, db_url: str) -> None:
    with TestClient(create_app(make_config(provider, db_url), admin_key=KEY)) as client:
        response = client.get("/admin/users/acme/alice", headers={"authorization": f"Bearer {KEY}"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


@needs_chromium
def test_drill_down_of_a_user_id_with_a_slash(tollgate_url: str, tmp_path: Path) -> None:
    summary = _summary_once_recorded(tollgate_url)
    dom = _dump_dom(f"{tollgate_url}/dashboard#key={KEY}&user=acme%2Falice", tmp_path)
    assert re.search(r'id="user-detail" data-state="ready"', dom)
    assert f'<span id="user-name">{SLASHED}</span>' in dom
    assert f"<dt>cost all time</dt><dd>{format_usd(Decimal(summary['all_time']['cost_usd']))}</dd>" in dom
    assert [row[0] for row in _tables(dom)["detail-c"][1:]] == ["gpt-4o-mini"]


@needs_chromium
def test_a_failed_drill_down_shows_the_apis_message_and_leaves_the_board(tollgate_url: str, tmp_path: Path) -> None:
    dom = _dump_dom(f"{tollgate_url}/dashboard#key={KEY}&user=a%00b", tmp_path)
    assert re.search(r'<body data-state="ready"', dom)
    assert re.search(r'id="user-detail" data-state="error"', dom)
    assert "Query and path values may not hold a NUL character (%00)." in dom


@needs_chromium
def test_the_page_shows_the_admin_apis_message_once(provider: FakeProvider, db_url: str, tmp_path: Path) -> None:
    with _serve(provider, db_url, admin_key="") as server:
        dom = _dump_dom(f"http://127.0.0.1:{server.port}/dashboard#key={KEY}", tmp_path)
    assert re.search(r'<body data-state="error"', dom)
    [status] = re.findall(r'<span id="status" role="status" class="error">(.*?)</span>', dom)
    assert status == "The admin API is off: set $TOLLGATE_ADMIN_KEY to turn it on."
