"""The daily vector storage job: a row per store per day at the GB-day price past the free GB, billed to its creator."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from pricing import DEFAULT_TOOL_PRICES
from proxy.cli import main
from proxy.providers import ProviderRouter
from proxy.storage import run_storage
from tests.conftest import Tollgate, json_answer
from tests.fakeprovider import FakeProvider

_DAY = date(2026, 11, 30)
_PAGE_1 = {
    "object": "list",
    "data": [{"id": "vs_b", "object": "vector_store", "usage_bytes": 2_000_000_000}],
    "has_more": True,
    "last_id": "vs_b",
}
_PAGE_2 = {
    "object": "list",
    "data": [{"id": "vs_a", "object": "vector_store", "usage_bytes": 1_500_000_000}],
    "has_more": False,
    "last_id": "vs_a",
}


@pytest.fixture
def managed(tollgate_factory: Any, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> Tollgate:
    monkeypatch.setenv("TOLLGATE_TEST_STORAGE_KEY", "sk-provider")
    tollgate: Tollgate = tollgate_factory("", 'api_key_env = "TOLLGATE_TEST_STORAGE_KEY"')
    created = {"id": "vs_a", "object": "vector_store", "name": "docs", "usage_bytes": 0}
    provider.answer("POST", "/v1/vector_stores", json_answer(orjson.dumps(created)))
    tollgate.client.post("/v1/vector_stores", json={"name": "docs"}, headers={"x-user-id": "alice"})
    [row] = tollgate.rows()
    assert row["resource_id"] == "vs_a"
    provider.answer("GET", "/v1/vector_stores", json_answer(orjson.dumps(_PAGE_1)), json_answer(orjson.dumps(_PAGE_2)))
    return tollgate


def test_each_store_is_billed_once_a_day_after_the_free_gb(managed: Tollgate, provider: FakeProvider) -> None:
    rows = run_storage(ProviderRouter(managed.config.providers), managed.store, _DAY, DEFAULT_TOOL_PRICES)
    by_store = {row.resource_id: row for row in rows}
    # vs_a (first in id order) takes the free GB: 0.5 GB x $0.10; vs_b pays for its 2 GB.
    assert by_store["vs_a"].cost_pico == 50_000_000_000 and by_store["vs_a"].user_id == "alice"
    assert by_store["vs_b"].cost_pico == 200_000_000_000 and by_store["vs_b"].user_id is None
    assert {row.started_at.date() for row in rows} == {_DAY}
    assert provider.requests[-1].header(b"authorization") == b"Bearer sk-provider"
    assert provider.requests[-1].query == b"limit=100&order=asc&after=vs_b"


def test_running_twice_for_a_day_records_it_once(managed: Tollgate) -> None:
    router = ProviderRouter(managed.config.providers)
    assert len(run_storage(router, managed.store, _DAY, DEFAULT_TOOL_PRICES)) == 2
    assert run_storage(router, managed.store, _DAY, DEFAULT_TOOL_PRICES) == []
    assert len(managed.rows(3)) == 3  # the creation and two storage rows


def test_storage_run_prints_what_it_recorded(
    managed: Tollgate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "storage.toml"
    providers = managed.config.providers[0]
    config.write_text(
        f'[database]\nurl = "{managed.config.database.url}"\n\n[[providers]]\nname = "fake"\n'
        f'base_url = "{providers.base_url}"\napi_key_env = "TOLLGATE_TEST_STORAGE_KEY"\n'
    )
    assert main(["storage", "run", "--config", str(config), "--day", "2026-11-30"]) == 0
    out = capsys.readouterr().out
    assert "vs_a" in out and "$0.05" in out and "alice" in out
    assert out.endswith("2 storage rows recorded for 2026-11-30\n")
