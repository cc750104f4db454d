"""Spend limits set at run time: through the CLI and the admin API, seen by every instance, kept across restarts."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.cli import main
from proxy.limits.runtime import RuntimeLimits
from tests.conftest import chat_completion, json_answer, make_config
from tests.fakeprovider import FakeProvider

CHAT = "/v1/chat/completions"
ADMIN = {"authorization": "Bearer s3cret"}
ALICE = {"x-user-id": "alice"}
PRICES = '[pricing.models."metered-model"]\ninput = 1\noutput = 2\nmax_output_tokens = 1000\n'
BODY = orjson.dumps({"model": "metered-model", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
# A generous limit in the file; a runtime one far below a request's bound (about $0.0003) refuses everything.
CONFIG = (
    PRICES + '[budget]\nsync_interval = 0.1\n[[limits]]\nscope = "user"\nid = "alice"\nwindow = "month"\nmax_usd = 5\n'
)
TINY = "0.0001"


def _app(provider: FakeProvider, db_url: str) -> TestClient:
    provider.answer("POST", CHAT, json_answer(chat_completion(model="metered-model")))
    client = TestClient(create_app(make_config(provider, db_url, CONFIG), admin_key="s3cret"))
    client.__enter__()
    return client


def _within(seconds: float, check: Any) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def _refused(client: TestClient) -> bool:
    return client.post(CHAT, content=BODY, headers=ALICE).status_code == 429


def _config_file(provider: FakeProvider, db_url: str, tmp_path: Path) -> str:
    path = tmp_path / "tollgate.toml"
    path.write_text(make_config_text(provider, db_url))
    return str(path)


def make_config_text(provider: FakeProvider, db_url: str) -> str:
    config = make_config(provider, db_url, CONFIG)
    return f'{CONFIG}\n[database]\nurl = "{config.database.url}"\n'


def test_a_limit_set_through_the_api_applies_on_another_instance_within_sync_interval(
    provider: FakeProvider, any_db_url: str
) -> None:
    first, second = _app(provider, any_db_url), _app(provider, any_db_url)
    try:
        assert not _refused(second)
        response = first.put(
            "/admin/limits/user/alice/month", json={"max_usd": TINY, "changed_by": "ops"}, headers=ADMIN
        )
        assert response.status_code == 200
        assert response.json()["new"]["max_usd"] == TINY and response.json()["old"] is None
        assert _refused(first)  # at once where it was set
        started = time.monotonic()
        assert _within(2, lambda: _refused(second))
        assert time.monotonic() - started < 0.1 + 0.5  # sync_interval, and the time a request takes
        message = second.post(CHAT, content=BODY, headers=ALICE).json()["error"]["message"]
        assert f"${TINY} limit" in message
    finally:
        first.__exit__(None, None, None)
        second.__exit__(None, None, None)


def test_a_runtime_limit_survives_a_restart_and_its_removal_restores_the_config_one(
    provider: FakeProvider, db_url: str
) -> None:
    client = _app(provider, db_url)
    client.put("/admin/limits/user/alice/month", json={"max_usd": TINY}, headers=ADMIN)
    client.__exit__(None, None, None)
    client = _app(provider, db_url)  # a restart: the limit is read before the first request
    try:
        assert _refused(client)
        states = client.get("/admin/limits", params={"user": "alice"}, headers=ADMIN).json()["limits"]
        assert [(s["source"], s["limit_usd"]) for s in states] == [("runtime", TINY)]
        assert client.delete("/admin/limits/user/alice/month", headers=ADMIN).status_code == 200
        assert not _refused(client)
        states = client.get("/admin/limits", params={"user": "alice"}, headers=ADMIN).json()["limits"]
        assert [(s["source"], s["limit_usd"]) for s in states] == [("config", "5")]
    finally:
        client.__exit__(None, None, None)


def test_a_limit_set_through_the_cli_reaches_a_running_server_and_is_listed_as_runtime(
    provider: FakeProvider, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = _app(provider, db_url)
    config = _config_file(provider, db_url, tmp_path)
    try:
        assert not _refused(client)
        args = ["limits", "set", "--config", config, "--user", "alice", "--window", "month", "--max-usd", TINY]
        assert main(args) == 0
        assert _within(2, lambda: _refused(client))
        capsys.readouterr()
        assert main(["limits", "--config", config, "--user", "alice", "--json"]) == 0
        [state] = orjson.loads(capsys.readouterr().out)
        assert (state["source"], state["limit_usd"]) == ("runtime", TINY)
    finally:
        client.__exit__(None, None, None)


def test_every_change_is_audited_with_who_when_old_and_new(provider: FakeProvider, db_url: str, tmp_path: Path) -> None:
    client = _app(provider, db_url)
    config = _config_file(provider, db_url, tmp_path)
    try:
        client.put("/admin/limits/team/research/day", json={"max_usd": "3", "changed_by": "ops"}, headers=ADMIN)
        main(
            [
                "limits",
                "set",
                "--config",
                config,
                "--team",
                "research",
                "--window",
                "day",
                "--max-usd",
                "4",
                "--by",
                "ann",
            ]
        )
        client.delete("/admin/limits/team/research/day", headers=ADMIN)
        changes = client.get("/admin/limits/changes", headers=ADMIN).json()["changes"]
    finally:
        client.__exit__(None, None, None)
    summary = [(c["changed_by"], c["old"] and c["old"]["max_usd"], c["new"] and c["new"]["max_usd"]) for c in changes]
    assert summary == [("admin-api", "4", None), ("ann", "3", "4"), ("admin-api:ops", None, "3")]
    assert all(c["changed_at"].endswith("Z") for c in changes)


def test_a_runtime_limit_is_checked_like_a_config_one(provider: FakeProvider, db_url: str) -> None:
    client = _app(provider, db_url)
    try:
        bad = client.put("/admin/limits/user/alice/month", json={"max_usd": "-1"}, headers=ADMIN)
        zone = client.put("/admin/limits/user/alice/month", json={"max_usd": 1, "timezone": "Mars/Base"}, headers=ADMIN)
        scope = client.put("/admin/limits/planet/alice/month", json={"max_usd": 1}, headers=ADMIN)
    finally:
        client.__exit__(None, None, None)
    assert [r.status_code for r in (bad, zone, scope)] == [400, 400, 400]
    assert "max_usd = -1 must be more than 0" in bad.json()["error"]["message"]
    assert "timezone" in zone.json()["error"]["message"]
    assert "scope = planet must be one of" in scope.json()["error"]["message"]


def test_global_limits_have_one_id(db_url: str) -> None:
    from datetime import UTC, datetime

    from proxy.limits.runtime import make_limit
    from proxy.recording.store import Store

    store = Store(db_url)
    store.create_tables()
    runtime = RuntimeLimits(store)
    runtime.set(make_limit("global", "all", "day", "7"), "t", datetime.now(UTC))
    runtime.set(make_limit("global", "*", "day", "8"), "t", datetime.now(UTC))
    assert [(r.limit.id, r.limit.max_usd) for r in runtime.all()] == [("*", Decimal(8))]
    store.dispose()
