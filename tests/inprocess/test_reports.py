"""Rows from the proxy and from a meter, in one database, reported together: `tollgate usage`, the dashboard's API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.cli import main
from tests.conftest import chat_completion, json_answer, make_config
from tests.fakeprovider import FakeProvider
from tests.inprocess.conftest import MeterFactory, rows, sync_client

_HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
_ADMIN_KEY = "s3cret"


@pytest.fixture
def proxy(provider: FakeProvider, db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_config(provider, db_url), admin_key=_ADMIN_KEY)) as client:
        yield client


def _spend_through_both(proxy: TestClient, meter_factory: MeterFactory, provider: FakeProvider) -> None:
    """alice once through the proxy and once through a meter; bob once through the meter."""
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": _HI})
    assert proxy.post("/v1/chat/completions", content=body, headers={"x-user-id": "alice"}).status_code == 200
    meter = meter_factory()
    client = sync_client(meter, provider)
    for user in ("alice", "bob"):
        with meter.attribute(user=user):
            client.chat.completions.create(model="gpt-4o-mini", messages=_HI)
    # The meter's flush waits for its own rows; the proxy's recorder writes within its flush interval.
    deadline = time.monotonic() + 5
    while len(rows(meter)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(r["front_door"] for r in rows(meter)) == ["inprocess", "inprocess", "proxy"]


def test_tollgate_usage_adds_up_the_rows_of_both_doors(
    proxy: TestClient,
    meter_factory: MeterFactory,
    provider: FakeProvider,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _spend_through_both(proxy, meter_factory, provider)
    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')
    assert main(["usage", "--config", str(config), "--json", "--group-by", "user"]) == 0
    report = {row["group"]: row for row in orjson.loads(capsys.readouterr().out)}
    assert (report["alice"]["requests"], report["bob"]["requests"]) == (2, 1)
    assert Decimal(report["alice"]["cost_usd"]) == 2 * Decimal(report["bob"]["cost_usd"]) > 0
    assert main(["export", "usage", "--config", str(config)]) == 0
    exported = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted((r["user_id"], r["front_door"]) for r in exported) == [
        ("alice", "inprocess"),
        ("alice", "proxy"),
        ("bob", "inprocess"),
    ]


def test_the_dashboards_usage_api_shows_the_rows_of_both_doors(
    proxy: TestClient, meter_factory: MeterFactory, provider: FakeProvider
) -> None:
    _spend_through_both(proxy, meter_factory, provider)
    answer = proxy.get("/admin/usage?group_by=user", headers={"authorization": f"Bearer {_ADMIN_KEY}"})
    assert answer.status_code == 200
    report = {row["group"]: row for row in answer.json()["rows"]}
    assert (report["alice"]["requests"], report["bob"]["requests"]) == (2, 1)
