"""Bursts against a spend limit, with tight bounds and with clamp: the budget is used, and never passed.

Each request costs what its answer reports: the prompt as the chat format counts it, and as
many output tokens as its cap allows (the fake provider answers with all of them), so a
bound can be loose only by what Tollgate adds. Run on one worker, two worker processes
sharing SQLite, and two instances sharing PostgreSQL.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from proxy.app import create_app
from proxy.config import parse_config
from proxy.limits.tokenizer import encoding
from tests.conftest import chat_completion, json_answer
from tests.fakeprovider import Canned, FakeProvider, Received, ServerThread, free_port
from tests.limits.test_limits import _config_text, _recorded

CHAT = "/v1/chat/completions"
TEXT = "Tollgate meters every request, bounds its cost before it runs, and refuses what it cannot pay for. "
# $1/M input and $2/M output; tiktoken knows gpt-4o-mini, not metered-model: the byte bound's "before".
PRICES = "".join(
    f'[pricing.models."{model}"]\ninput = 1\noutput = 2\nmax_output_tokens = 4000\n'
    for model in ("gpt-4o-mini", "metered-model")
)
REQUESTS = 200
FITS = 35  # what the budget covers, at the real cost of each request


def _body(model: str, max_tokens: int) -> bytes:
    return orjson.dumps(
        {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": TEXT * 100}]}
    )


def _prompt_tokens() -> int:
    o200k = encoding("o200k_base")
    assert o200k is not None
    return len(o200k.encode_ordinary(TEXT * 100)) + 3 + 3  # the chat format's count: 3 per message, 3 for the reply


PROMPT = _prompt_tokens()


def _answer(request: Received) -> Canned:
    cap = orjson.loads(request.body)["max_tokens"]
    return json_answer(chat_completion(model="gpt-4o-mini", prompt_tokens=PROMPT, completion_tokens=cap))


def _cost(max_tokens: int) -> Decimal:
    return (PROMPT * Decimal(1) + max_tokens * Decimal(2)) / 10**6


@dataclass
class Burst:
    admitted: int
    clamped: int
    spent: Decimal
    rows: int


async def _storm(urls: list[str], body: bytes) -> list[httpx.Response]:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=REQUESTS), timeout=60) as client:
        calls = [
            client.post(urls[i % len(urls)] + CHAT, content=body, headers={"x-user-id": "alice"})
            for i in range(REQUESTS)
        ]
        return list(await asyncio.gather(*calls))


def burst(urls: list[str], db_url: str, body: bytes) -> Burst:
    responses = asyncio.run(_storm(urls, body))
    assert {r.status_code for r in responses} <= {200, 429}
    rows, spent, counter = _recorded(db_url, REQUESTS)
    assert rows == REQUESTS and counter == spent * 10**12
    admitted = sum(r.status_code == 200 for r in responses)
    return Burst(admitted, sum("x-tollgate-clamped" in r.headers for r in responses), spent, rows)


def _limits(max_usd: Decimal, clamp: bool) -> str:
    on_exceed = 'on_exceed = "clamp"\nmin_output_tokens = 256\n' if clamp else ""
    return f'{PRICES}\n[[limits]]\nscope = "user"\nwindow = "day"\nmax_usd = "{max_usd}"\n{on_exceed}'


@pytest.fixture(
    params=[
        "one worker",
        pytest.param("two workers", marks=pytest.mark.slow),
        pytest.param("two instances", marks=[pytest.mark.postgres, pytest.mark.slow]),
    ]
)
def fleet(request: pytest.FixtureRequest, provider: FakeProvider, tmp_path: Path) -> Iterator[Any]:
    """Start Tollgate with a config's limits as one worker, two workers (SQLite), or two instances (PostgreSQL)."""
    started: list[ServerThread] = []

    def start(limits: str) -> tuple[list[str], str]:
        if request.param == "one worker":
            db_url = f"sqlite:///{tmp_path / 'one.db'}"
            server = ServerThread(create_app(parse_config(_config_text(provider, db_url, limits))))
            server.__enter__()
            started.append(server)
            return [f"http://127.0.0.1:{server.port}"], db_url
        if request.param == "two workers":
            db_url = f"sqlite:///{tmp_path / 'two.db'}"
            ports = [free_port()]
            commands = [["--workers", "2"]]
        else:
            db_url = request.getfixturevalue("postgres_url")
            ports = [free_port(), free_port()]
            commands = [[], []]
        config = tmp_path / "fleet.toml"
        config.write_text(_config_text(provider, db_url, limits))
        for port, extra in zip(ports, commands, strict=True):
            process = serve(config, port, extra)
            request.addfinalizer(functools.partial(stop, process))  # before the database goes away
        return [f"http://127.0.0.1:{port}" for port in ports], db_url

    yield start
    for server in started:
        server.__exit__(None, None, None)


def serve(config: Path, port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    """``tollgate serve`` with ``config`` on ``port``, ready."""
    argv = [sys.executable, "-m", "proxy.cli", "serve", "--config", str(config), "--port", str(port), *extra]
    process = subprocess.Popen(argv, env={**os.environ, "TOLLGATE_LOG_LEVEL": "warning"})
    try:
        _wait_ready(port, process)
    except BaseException:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, "tollgate serve exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "tollgate serve did not start"
        time.sleep(0.05)


def test_tight_bounds_admit_what_the_budget_covers_in_a_burst(fleet: Any, provider: FakeProvider) -> None:
    provider.answer_computed("POST", CHAT, _answer)
    limit = _cost(100) * FITS
    urls, db_url = fleet(_limits(limit, clamp=False))
    result = burst(urls, db_url, _body("gpt-4o-mini", 100))
    assert result.spent <= limit
    if result.admitted < 0.9 * FITS:
        # Known shortfall (see the README's Bursts figures): which requests still hold budget when the last
        # ones arrive decides the outcome, and on a loaded machine 30 of 35 is common. The hard limit holds.
        pytest.xfail(f"tight bounds admitted {result.admitted} of the {FITS} the budget covers")


def test_clamp_uses_the_budget_to_within_min_output_tokens_in_a_burst(fleet: Any, provider: FakeProvider) -> None:
    provider.answer_computed("POST", CHAT, _answer)
    limit = _cost(1000) * 10 + _cost(100) * 3
    urls, db_url = fleet(_limits(limit, clamp=True))
    result = burst(urls, db_url, _body("gpt-4o-mini", 1000))
    assert result.spent <= limit
    # What is left could not pay for one more request of min_output_tokens (and the bound's slack). Across
    # processes the budget a clamp needs may sit in the other process's lease for a moment, and the clamp is
    # tried again as it comes back (proxy.second_look).
    left = limit - result.spent
    assert left < _cost(256) * Decimal("1.1"), f"${left} left; {result.admitted} admitted, {result.clamped} clamped"
    if db_url.endswith("one.db"):
        # On one worker the burst's last requests always meet the room a full one leaves, and are clamped. Across
        # processes the room may also be used by an eleventh full request (the limit covers 11.7), leaving less
        # than a clamp needs: the budget is then used all the same.
        assert result.clamped >= 1
