"""Hard spend limits under concurrency: recorded spend never passes a blocking limit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import orjson
import pytest
import sqlalchemy as sa

from proxy.app import create_app
from proxy.config import parse_config
from proxy.recording.store import Store
from proxy.recording.tables import COUNTERS_TABLE, USAGE_TABLE
from tests.conftest import Tollgate, chat_completion, journal_dir, json_answer
from tests.fakeprovider import FakeProvider, ServerThread, free_port
from tests.limits import alert_sink

CHAT = "/v1/chat/completions"
# Priced at $1/M input and $2/M output; each request's bound equals its real cost, so exactly N fit.
PRICES = '[pricing.models."metered-model"]\ninput = 1\noutput = 2\nmax_output_tokens = 1000\n'
BODY = orjson.dumps({"model": "metered-model", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
COST = (len(BODY) * Decimal(1) + 100 * Decimal(2)) / 10**6
LIMIT = Decimal("0.01")
FITS = int(LIMIT // COST)


def _limits(max_usd: Decimal = LIMIT) -> str:
    return f'{PRICES}\n[[limits]]\nscope = "user"\nwindow = "day"\nmax_usd = "{max_usd}"\nalert_at = [0.5, 1.0]\n'


def _answer(provider: FakeProvider) -> None:
    usage_body = chat_completion(model="metered-model", prompt_tokens=len(BODY), completion_tokens=100)
    provider.answer("POST", CHAT, json_answer(usage_body))


def _config_text(provider: FakeProvider, db_url: str, extra: str = "") -> str:
    return (
        f'{extra}\n[database]\nurl = "{db_url}"\n'
        f'[recorder]\nflush_interval = 0.01\njournal_dir = "{journal_dir(db_url)}"\n'
        f'[[providers]]\nname = "fake"\nbase_url = "{provider.base_url}"\nmodels = ["*"]\n'
    )


async def _storm(urls: list[str], count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        calls = [
            client.post(urls[i % len(urls)] + CHAT, content=BODY, headers={"x-user-id": "alice"}) for i in range(count)
        ]
        return list(await asyncio.gather(*calls))


def _recorded(db_url: str, expected_rows: int) -> tuple[int, Decimal, int]:
    """(rows, summed row cost, counter spend), once ``expected_rows`` are written."""
    store = Store(db_url)
    deadline = time.monotonic() + 10
    try:
        while True:
            with store.engine.connect() as conn:
                rows = conn.execute(sa.select(sa.func.count()).select_from(USAGE_TABLE)).scalar_one()
                cost = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(USAGE_TABLE.c.cost_pico), 0))).scalar_one()
                spent = conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(COUNTERS_TABLE.c.spent_pico), 0))
                ).scalar_one()
            if rows >= expected_rows or time.monotonic() > deadline:
                return int(rows), Decimal(int(cost)) / 10**12, int(spent)
            time.sleep(0.05)
    finally:
        store.dispose()


def _assert_refusal(response: httpx.Response) -> None:
    assert response.status_code == 429
    assert response.headers["x-should-retry"] == "false"
    assert int(response.headers["retry-after"]) > 0
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("insufficient_quota", "spend_limit_exceeded", None)
    assert "user 'alice'" in error["message"] and "$0.01 limit" in error["message"]


def test_concurrent_requests_never_pass_a_blocking_limit(provider: FakeProvider, db_url: str) -> None:
    _answer(provider)
    config = parse_config(_config_text(provider, db_url, _limits()))
    with ServerThread(create_app(config)) as server:
        responses = asyncio.run(_storm([f"http://127.0.0.1:{server.port}"], 200))
    admitted = [r for r in responses if r.status_code == 200]
    assert len(admitted) == FITS
    for refused in (r for r in responses if r.status_code != 200):
        _assert_refusal(refused)
    assert len(provider.requests) == FITS  # a refused request never reaches the provider
    rows, cost, spent = _recorded(db_url, 200)
    assert rows == 200
    assert cost == FITS * COST <= LIMIT
    assert spent == cost * 10**12


def test_admitted_responses_carry_the_remaining_budget(tollgate_factory: object, provider: FakeProvider) -> None:
    tollgate: Tollgate = tollgate_factory(_limits())  # type: ignore[operator]
    _answer(provider)
    response = tollgate.client.post(CHAT, content=BODY, headers={"x-user-id": "alice"})
    remaining = Decimal(response.headers["x-tollgate-limit-remaining-usd"])
    assert remaining == LIMIT - COST


def test_request_without_max_tokens_is_refused_near_the_limit_with_the_bound_explained(
    tollgate_factory: object, provider: FakeProvider
) -> None:
    tollgate: Tollgate = tollgate_factory(_limits(Decimal("0.001")))  # type: ignore[operator]
    body = orjson.dumps({"model": "metered-model", "messages": [{"role": "user", "content": "hi"}]})
    response = tollgate.client.post(CHAT, content=body, headers={"x-user-id": "alice"})
    assert response.status_code == 429
    message = response.json()["error"]["message"]
    assert "1,000 output tokens (no max_tokens set, so the model's maximum output)" in message
    assert "set max_tokens" in message
    assert provider.requests == []


def test_openai_sdk_raises_its_quota_error_without_retrying(tollgate_factory: object, provider: FakeProvider) -> None:
    tollgate: Tollgate = tollgate_factory(_limits(Decimal("0.0000001")))  # type: ignore[operator]
    client = openai.OpenAI(base_url="http://tollgate.test/v1", api_key="sk", http_client=tollgate.client, max_retries=3)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(
            model="metered-model", messages=[], max_tokens=10, extra_headers={"X-User-Id": "alice"}
        )
    assert raised.value.code == "spend_limit_exceeded"
    assert time.monotonic() - started < 1  # no retry with backoff
    assert len(tollgate.rows()) == 1  # one request made, one refusal recorded


def test_spend_alerts_fire_once_per_threshold(tollgate_factory: object, provider: FakeProvider) -> None:
    alert_sink.RECEIVED.clear()
    sink = '[alerts]\nalert_handlers = ["tests.limits.alert_sink:collect"]\n'
    tollgate: Tollgate = tollgate_factory(_limits(COST * 4) + sink)  # type: ignore[operator]
    _answer(provider)
    statuses = [tollgate.client.post(CHAT, content=BODY, headers={"x-user-id": "alice"}).status_code for _ in range(6)]
    assert statuses == [200] * 4 + [429] * 2
    tollgate.rows(expected=6)
    deadline = time.monotonic() + 5
    while len(alert_sink.RECEIVED) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # room for a duplicate to show up, if there were one
    assert [(a.scope, a.scope_id, a.threshold) for a in alert_sink.RECEIVED] == [
        ("user", "alice", Decimal("0.5")),
        ("user", "alice", Decimal("1.0")),
    ]
    # Each alert reports the spend when it was seen, at or past its threshold.
    assert all(a.spent_usd >= a.threshold * a.limit_usd for a in alert_sink.RECEIVED)
    assert alert_sink.RECEIVED[1].spent_usd == COST * 4


@pytest.fixture
def two_servers(provider: FakeProvider, any_db_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two Tollgate processes on different ports sharing one database (a SQLite file, or PostgreSQL)."""
    config = tmp_path / "fleet.toml"
    config.write_text(_config_text(provider, any_db_url, _limits()))
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "proxy.cli", "serve", "--config", str(config), "--port", str(port)],
            env={**os.environ, "TOLLGATE_LOG_LEVEL": "warning"},
        )
        for port in ports
    ]
    try:
        for port, process in zip(ports, processes, strict=True):
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, "tollgate serve exited"
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "tollgate serve did not start"
                time.sleep(0.05)
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def test_two_processes_sharing_a_database_jointly_respect_a_limit(
    two_servers: list[str], provider: FakeProvider, any_db_url: str
) -> None:
    _answer(provider)
    responses = asyncio.run(_storm(two_servers, 200))
    admitted = sum(r.status_code == 200 for r in responses)
    for refused in (r for r in responses if r.status_code != 200):
        _assert_refusal(refused)
    assert len(provider.requests) == admitted
    rows, cost, spent = _recorded(any_db_url, 200)
    assert rows == 200
    assert cost == admitted * COST <= LIMIT
    # Near the limit a worker leases only what a request needs, so little budget sits unused in either.
    if admitted < FITS:
        # Known shortfall (issue 16's note): a request refused while the other process holds the last lease
        # is not retried, so a few of the requests the budget covers can be refused. The hard limit holds.
        pytest.xfail(f"{admitted} of the {FITS} requests the budget covers were admitted")
    assert admitted == FITS
