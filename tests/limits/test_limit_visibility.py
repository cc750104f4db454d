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
    assert lines[0].split()[:4] == ["scope", "id", "window", "action"]
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
