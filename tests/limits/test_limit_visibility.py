"""`tollgate limits` and `GET /admin/limits` show spent, held, limit and remaining."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.cli import main
from tests.conftest import Tollgate, make_config
from tests.fakeprovider import FakeProvider
from tests.limits.test_limits import BODY, CHAT, COST, LIMIT, _answer, _limits


def _spend_twice(tollgate: Tollgate, provider: FakeProvider) -> None:
    _answer(provider)
    for user in ("alice", "alice", "bob"):
        assert tollgate.client.post(CHAT, content=BODY, headers={"x-user-id": user}).status_code == 200
    tollgate.rows(expected=3)


def test_limits_command_shows_each_users_state(
    tollgate_factory: object, provider: FakeProvider, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tollgate: Tollgate = tollgate_factory(_limits())  # type: ignore[operator]
    _spend_twice(tollgate, provider)
    config = tmp_path / "limits.toml"
    config.write_text(f'{_limits()}\n[database]\nurl = "{db_url}"\n')
    assert main(["limits", "--config", str(config), "--user", "alice", "--json"]) == 0
    [alice] = orjson.loads(capsys.readouterr().out)
    assert (alice["scope"], alice["id"], alice["window"], alice["action"]) == ("user", "alice", "day", "block")
    assert Decimal(alice["spent_usd"]) == 2 * COST
    assert Decimal(alice["limit_usd"]) == LIMIT
    assert Decimal(alice["spent_usd"]) + Decimal(alice["held_usd"]) + Decimal(alice["remaining_usd"]) == LIMIT
    assert main(["limits", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:6] == ["scope", "id", "source", "state", "window", "action"]
    assert sorted(line.split()[1] for line in lines[1:]) == ["alice", "bob"]


def test_admin_limits_needs_the_admin_key(provider: FakeProvider, db_url: str) -> None:
    config = make_config(provider, db_url, _limits())
    with TestClient(create_app(config, admin_key="s3cret")) as client:
        assert client.get("/admin/limits").status_code == 401
        assert client.get("/admin/limits", headers={"authorization": "Bearer wrong"}).status_code == 401
        _answer(provider)
        client.post(CHAT, content=BODY, headers={"x-user-id": "alice"})
        response = client.get("/admin/limits?user=alice", headers={"authorization": "Bearer s3cret"})
    assert response.status_code == 200
    [state] = response.json()["limits"]
    assert Decimal(state["spent_usd"]) + Decimal(state["held_usd"]) <= LIMIT
    assert state["id"] == "alice"


def test_admin_api_is_off_without_a_key(provider: FakeProvider, db_url: str) -> None:
    with TestClient(create_app(make_config(provider, db_url), admin_key="")) as client:
        response = client.get("/admin/limits", headers={"authorization": "Bearer anything"})
    assert response.status_code == 404
    assert "TOLLGATE_ADMIN_KEY" in response.json()["error"]["message"]


def _config(tmp_path: Path, db_url: str, limits: str) -> Path:
    config = tmp_path / "limits.toml"
    config.write_text(f'{limits}\n[database]\nurl = "{db_url}"\n')
    return config


WILDCARD_AND_TEAM = """
[[limits]]
scope = "user"
id = "*"
window = "day"
max_usd = "1"
alert_at = [0.5]

[[limits]]
scope = "user"
id = "alice"
window = "day"
max_usd = "2"

[[limits]]
scope = "team"
id = "research"
window = "month"
max_usd = "5"

[[limits]]
scope = "thread"
window = "total"
max_usd = "0.5"

[teams.research]
members = ["alice"]
"""


def test_a_wildcard_limit_with_no_traffic_is_listed_not_hidden(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from proxy.recording.store import Store

    Store(db_url).create_tables()
    assert main(["limits", "--config", str(_config(tmp_path, db_url, WILDCARD_AND_TEAM)), "--json"]) == 0
    rows = {(r["scope"], r["id"]): (r["source"], r["state"]) for r in orjson.loads(capsys.readouterr().out)}
    assert rows[("user", "*")] == ("wildcard", "ok")
    assert rows[("user", "alice")] == ("config", "ok")
    assert rows[("thread", "*")] == ("wildcard", "ok")


def test_a_users_limits_include_wildcards_and_their_teams_each_with_its_source(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from proxy.recording.store import Store

    Store(db_url).create_tables()
    config = _config(tmp_path, db_url, WILDCARD_AND_TEAM)
    assert main(["limits", "--config", str(config), "--user", "alice", "--json"]) == 0
    rows = sorted((r["scope"], r["id"], r["source"], r["limit_usd"]) for r in orjson.loads(capsys.readouterr().out))
    assert rows == [
        ("team", "research", "team", "5"),
        ("user", "alice", "config", "2"),
        ("user", "alice", "wildcard", "1"),
    ]
    assert main(["limits", "--config", str(config), "--user", "alice"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["scope", "id", "source", "state"]
    assert sorted(line.split()[2] for line in lines[1:]) == ["config", "team", "wildcard"]


def test_limits_take_a_thread(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from proxy.recording.store import Store

    Store(db_url).create_tables()
    config = _config(tmp_path, db_url, WILDCARD_AND_TEAM)
    assert main(["limits", "--config", str(config), "--thread", "conv-1", "--json"]) == 0
    [row] = orjson.loads(capsys.readouterr().out)
    assert (row["scope"], row["id"], row["source"], row["window"]) == ("thread", "conv-1", "wildcard", "total")


def test_a_limit_refusing_requests_reads_refusing_and_a_crossed_threshold_alerting(
    provider: FakeProvider, db_url: str
) -> None:
    warn = f'[[limits]]\nscope = "user"\nid = "*"\nwindow = "month"\nmax_usd = "{LIMIT * 4}"\naction = "warn"\n'
    config = make_config(provider, db_url, _limits() + "\n" + warn + "alert_at = [0.2]\n")
    _answer(provider)
    with TestClient(create_app(config, admin_key="k")) as client:
        statuses = [
            client.post(CHAT, content=BODY, headers={"x-user-id": "alice"}).status_code
            for _ in range(int(LIMIT // COST) + 3)
        ]
        assert 429 in statuses
        Tollgate(client, config).flush()
        response = client.get("/admin/limits?user=alice", headers={"authorization": "Bearer k"})
    states = {r["window"]: r["state"] for r in response.json()["limits"]}
    assert states == {"day": "refusing", "month": "alerting"}
    assert Decimal(next(r for r in response.json()["limits"] if r["window"] == "day")["remaining_usd"]) >= 0
