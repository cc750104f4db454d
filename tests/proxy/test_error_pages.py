"""Errors outside ``/v1`` (admin, dashboard, unknown routes, crashes) have the one OpenAI error shape too."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import pytest
from starlette.testclient import TestClient

from proxy.app import create_app
from tests.conftest import make_config
from tests.fakeprovider import FakeProvider

ADMIN = {"authorization": "Bearer s3cret"}


class _Answer(Protocol):
    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


@pytest.fixture
def client(provider: FakeProvider, db_url: str) -> Iterator[TestClient]:
    app = create_app(make_config(provider, db_url), admin_key="s3cret")
    # A crash must come back as a response, as a real server sends it, not as an exception in the test.
    with TestClient(app, base_url="http://tollgate.test", raise_server_exceptions=False) as client:
        yield client


def _break_the_database(db_url: str) -> None:
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        conn.execute("DROP TABLE usage_rollups")
    conn.close()


def _assert_one_shape(response: _Answer, status: int) -> dict[str, str | None]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    error: dict[str, str | None] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert len(error["message"] or "") > 20
    return error


def test_every_error_outside_v1_has_the_openai_shape(
    client: TestClient, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    posted = client.post("/admin/usage", headers=ADMIN)
    not_allowed = _assert_one_shape(posted, 405)
    assert set(posted.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert f"not answer POST; it answers {posted.headers['allow']}" in (not_allowed["message"] or "")
    assert not_allowed["code"] == "method_not_allowed"
    assert _assert_one_shape(client.get("/nowhere"), 404)["code"] == "not_found"
    refused = client.get("/admin/usage", headers={"authorization": "Bearer wrong"})
    assert _assert_one_shape(refused, 401)["code"] == "invalid_api_key"
    assert refused.headers["www-authenticate"] == "Bearer"
    _break_the_database(db_url)
    with caplog.at_level(logging.ERROR, logger="tollgate.app"):
        crashed = _assert_one_shape(client.get("/admin/usage", headers=ADMIN), 500)
    assert crashed["type"] == "server_error" and "log" in (crashed["message"] or "")
    assert "Traceback" in caplog.text and "usage_rollups" in caplog.text


def test_a_trailing_slash_is_a_404_never_a_redirect_to_the_host_header(client: TestClient) -> None:
    response = client.get("/admin/usage/", headers={**ADMIN, "host": "evil.example"}, follow_redirects=False)
    error = _assert_one_shape(response, 404)
    assert "location" not in response.headers
    assert "/admin/usage/" in (error["message"] or "")
    assert "evil.example" not in response.text
