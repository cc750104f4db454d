"""The admin API takes only its documented query parameters, names the window as the CLI does, writes plain money."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from proxy.admin.openapi import admin_openapi
from proxy.app import create_app
from proxy.clock import fixed_clock
from proxy.recording.store import Store
from tests.conftest import make_config
from tests.fakeprovider import FakeProvider
from tests.recording.test_store import _BASE

ADMIN = {"authorization": "Bearer k"}
NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)


@pytest.fixture
def admin(provider: FakeProvider, db_url: str) -> Iterator[TestClient]:
    store = Store(db_url)
    store.create_tables()
    store.insert_records(
        [
            dataclasses.replace(_BASE, request_id="a", started_at=datetime(2026, 11, 2, tzinfo=UTC), cost_pico=918_400),
            dataclasses.replace(
                _BASE, request_id="b", started_at=datetime(2026, 11, 5, tzinfo=UTC), tags='{"env": "prod"}'
            ),
        ]
    )
    store.dispose()
    with TestClient(create_app(make_config(provider, db_url), admin_key="k", clock=fixed_clock(NOW))) as client:
        yield client


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("/admin/usage?sinse=2026-11-01", "sinse"),
        ("/admin/limits?period=2026-11", "period"),
        ("/admin/invoices?user=alice", "user"),
        ("/admin/users/alice/summary?month=2026-11", "month"),
        ("/admin/invoices/preview?status=paid", "status"),
    ],
)
def test_an_unknown_query_parameter_is_a_400_naming_it(admin: TestClient, url: str, name: str) -> None:
    response = admin.get(url, headers=ADMIN)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_parameter" and repr(name) in error["message"]


def _requests(admin: TestClient, query: str) -> int:
    response = admin.get(f"/admin/usage?{query}", headers=ADMIN)
    assert response.status_code == 200, response.text
    return sum(row["requests"] for row in response.json()["rows"])


def test_since_and_until_pick_the_window_and_from_and_to_stay_aliases(admin: TestClient) -> None:
    assert _requests(admin, "") == 2
    assert _requests(admin, "since=2026-11-03") == 1
    assert _requests(admin, "until=2026-11-03") == 1
    assert _requests(admin, "from=2026-11-03&to=2026-11-06") == 1
    both = admin.get("/admin/usage?since=2026-11-01&from=2026-11-01", headers=ADMIN)
    assert both.status_code == 400 and "not both" in both.json()["error"]["message"]
    empty = admin.get("/admin/usage?since=2026-12-05&until=2026-12-01", headers=ADMIN)
    assert empty.status_code == 400 and "window is empty" in empty.json()["error"]["message"]


def test_usage_groups_by_a_tag_and_filters_by_one(admin: TestClient) -> None:
    rows = admin.get("/admin/usage?group_by=tag:env", headers=ADMIN).json()["rows"]
    assert {row["group"]: row["requests"] for row in rows} == {"prod": 1, None: 1}
    assert _requests(admin, "tag=env=prod") == 1
    assert admin.get("/admin/usage?tag=env", headers=ADMIN).status_code == 400


def test_money_has_no_trailing_zeros(admin: TestClient) -> None:
    summary = admin.get("/admin/users/alice/summary", headers=ADMIN).json()
    # (918,400 + 150,000) picodollars this month, over 10 days
    assert summary["average_daily_cost_usd_this_month"] == "0.00000010684"
    assert summary["this_month"]["cost_usd"] == "0.0000010684"


_DOCUMENT = admin_openapi()
_OPERATIONS = [
    (path, method, operation)
    for path, item in _DOCUMENT["paths"].items()
    for method, operation in item.items()
    if method in ("get", "post", "patch", "put", "delete")
]


def _url(path: str) -> str:
    return path.replace("{id}", "alice")


@pytest.mark.parametrize(("path", "method"), [(path, method) for path, method, _ in _OPERATIONS])
def test_every_documented_route_refuses_an_unknown_parameter(admin: TestClient, path: str, method: str) -> None:
    response = admin.request(method, _url(path), params={"sinse": "2026-11-01"}, headers=ADMIN)
    assert response.status_code == 400, f"{method.upper()} {path} took ?sinse="
    error = response.json()["error"]
    assert error["code"] == "unknown_parameter" and "'sinse'" in error["message"]


def _value_for(parameter: dict[str, Any]) -> str:
    schema = parameter.get("schema", {})
    choices = schema.get("enum") or next((s["enum"] for s in schema.get("anyOf", ()) if "enum" in s), None)
    if choices:
        return str(choices[0])
    return "2026-10" if "pattern" in schema and "[0-9]{4}" in schema["pattern"] else "2026-11-01"


_DOCUMENTED = [
    (path, method, parameter["name"], _value_for(parameter))
    for path, method, operation in _OPERATIONS
    for parameter in operation.get("parameters", ())
    if parameter["in"] == "query"
]


@pytest.mark.parametrize(("path", "method", "name", "value"), _DOCUMENTED)
def test_every_documented_parameter_is_taken(admin: TestClient, path: str, method: str, name: str, value: str) -> None:
    response = admin.request(method, _url(path), params={name: value}, headers=ADMIN)
    # The value may still be refused (a period not yet ended, say), but never the parameter's name.
    assert response.status_code < 500
    if response.status_code == 400:
        assert response.json()["error"]["code"] != "unknown_parameter", response.text
