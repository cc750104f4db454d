"""A Tollgate on a config file (so the CLI and the app share it), a clock the test moves, and row readers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.config import load_config
from proxy.recording.store import Store
from proxy.recording.tables import COUNTERS_TABLE, HOURLY_TABLE, ROLLUPS_TABLE, USAGE_TABLE
from tests.conftest import chat_completion, journal_dir, json_answer
from tests.fakeprovider import FakeProvider

NOV_10 = datetime(2026, 11, 10, 12, tzinfo=UTC)


class MovableClock:
    """A clock a test sets: each row's start, limit windows and invoices read it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Running:
    client: TestClient
    config_path: Path
    store: Store
    clock: MovableClock
    provider: FakeProvider

    def ask(self, user: str, model: str = "gpt-4o-mini", prompt: int = 1000, completion: int = 500) -> dict[str, Any]:
        """One chat completion for ``user``; the fake answers with the given counts."""
        response = self.post(user, model, prompt, completion)
        assert response.status_code == 200, response.text
        portal = self.client.portal
        assert portal is not None
        portal.call(self.client.app_state["recorder"].flush)
        return rows(self.store)[-1]

    def post(self, user: str, model: str = "gpt-4o-mini", prompt: int = 1000, completion: int = 500) -> Any:
        body = chat_completion(model=model, prompt_tokens=prompt, completion_tokens=completion)
        self.provider.answer("POST", "/v1/chat/completions", json_answer(body))
        return self.client.post(
            "/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 600},
            headers={"x-user-id": user},
        )

    def reload(self) -> None:
        assert self.client.app_state["reloader"].reload()


def rows(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        query = USAGE_TABLE.select().order_by(USAGE_TABLE.c.started_at, USAGE_TABLE.c.request_id)
        return [dict(r._mapping) for r in conn.execute(query)]


def sums(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a reprice may change, as data: rows' costs, the rollups, the hourly rollup, the counters."""
    u = USAGE_TABLE.c
    with store.engine.connect() as conn:
        return {
            "rows": list(
                conn.execute(sa.select(u.request_id, u.cost_pico, u.unpriced, u.price_version).order_by(u.request_id))
            ),
            "rollups": list(conn.execute(sa.select(ROLLUPS_TABLE).order_by(*ROLLUPS_TABLE.primary_key.columns))),
            "hourly": list(conn.execute(sa.select(HOURLY_TABLE).order_by(*HOURLY_TABLE.primary_key.columns))),
            "counters": list(conn.execute(sa.select(COUNTERS_TABLE).order_by(COUNTERS_TABLE.c.counter_key))),
        }


def write_config(path: Path, provider: FakeProvider, db_url: str, max_usd: str = "100", extra: str = "") -> Path:
    """A config file with a monthly per-user blocking limit of ``max_usd`` and the fake as its one provider."""
    path.write_text(
        f'[database]\nurl = "{db_url}"\n'
        f'[recorder]\nflush_interval = 0.01\njournal_dir = "{journal_dir(db_url)}"\n'
        f'[[limits]]\nscope = "user"\nwindow = "month"\nmax_usd = "{max_usd}"\n'
        f'[[providers]]\nname = "fake"\nbase_url = "{provider.base_url}"\nmodels = ["gpt-*"]\nretries = 0\n{extra}'
    )
    return path


@contextlib.contextmanager
def start(path: Path, provider: FakeProvider) -> Iterator[Running]:
    """Tollgate on the config file ``path``, its clock at NOV_10."""
    clock = MovableClock(NOV_10)
    client = TestClient(create_app(load_config(path), clock=clock), base_url="http://tollgate.test")
    store = Store(load_config(path).database.url)
    try:
        with client:
            yield Running(client, path, store, clock, provider)
    finally:
        store.dispose()


@pytest.fixture
def running(provider: FakeProvider, any_db_url: str, tmp_path: Path) -> Iterator[Running]:
    """Tollgate with a monthly per-user limit of $100, started at NOV_10 on a config file in ``tmp_path``."""
    with start(write_config(tmp_path / "config.toml", provider, any_db_url), provider) as running:
        yield running
