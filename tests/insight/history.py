"""Synthetic usage histories written as real rows, for the anomaly, forecast and advice tests."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import datetime
from decimal import Decimal

from proxy.recording.records import UsageRecord
from proxy.recording.store import Store
from tests.recording.test_store import _BASE

_ids = itertools.count()
OPENED: list[Store] = []  # disposed after each test by tests/insight/conftest.py


def open_store(url: str) -> Store:
    """A store on ``url`` that is disposed when the test ends."""
    store = Store(url)
    OPENED.append(store)
    return store


def row(started_at: datetime, cost_usd: Decimal | str | None, **fields: object) -> UsageRecord:
    """One request started at ``started_at`` costing ``cost_usd`` (None: unpriced); other fields as given."""
    pico = None if cost_usd is None else int(Decimal(cost_usd) * 10**12)
    base: dict[str, object] = {"user_id": "alice", "team_id": None, "agent": None, "thread_id": None}
    return dataclasses.replace(
        _BASE,
        request_id=f"h{next(_ids)}",
        started_at=started_at,
        ended_at=started_at,
        cost_pico=pico,
        unpriced=pico is None,
        **{**base, **fields},  # type: ignore[arg-type]
    )


def write(url: str, rows: list[UsageRecord]) -> Store:
    """A store at ``url`` holding ``rows`` (and their rollups), in batches as the recorder writes them."""
    store = open_store(url)
    store.create_tables()
    for start in range(0, len(rows), 500):
        store.insert_records(rows[start : start + 500])
    return store
