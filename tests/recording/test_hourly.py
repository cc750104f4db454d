"""The hourly rollup and the thread minutes follow the raw rows, and rebuild from them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from proxy.recording.hourly import prune_hourly
from proxy.recording.rollups import rebuild_rollups
from proxy.recording.store import Store
from proxy.recording.tables import HOURLY_TABLE, THREAD_MINUTES_TABLE
from tests.recording.test_store import _BASE

START = datetime(2026, 11, 25, 14, 3, 10, tzinfo=UTC)


def _hourly(store: Store) -> list[tuple[str, str, str, int, int, int]]:
    h = HOURLY_TABLE.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(h.hour, h.scope, h.entity_id, h.requests, h.tokens, h.cost_pico)).all()
    return sorted((r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows)


def _store_with_rows(url: str) -> Store:
    store = Store(url)
    store.create_tables()
    batch = [
        dataclasses.replace(_BASE, request_id=f"r{i}", started_at=START + timedelta(minutes=25 * i), thread_id="t1")
        for i in range(3)
    ]
    store.insert_records(batch)
    return store


def test_each_scope_gets_its_hourly_sums(any_db_url: str) -> None:
    store = _store_with_rows(any_db_url)
    # Rows at 14:03 and 14:28 fall in hour 14, the one at 14:53 too; 13 tokens and 150_000 pico each.
    expected = [("2026-11-25T14", scope, entity, 3, 39, 450_000) for scope, entity in _SCOPES]
    assert _hourly(store) == sorted(expected)
    t = THREAD_MINUTES_TABLE.c
    with store.engine.connect() as conn:
        minutes = sorted(conn.execute(sa.select(t.minute, t.thread_id, t.requests, t.tokens, t.cost_pico)).all())
    assert [tuple(m) for m in minutes] == [
        ("2026-11-25T14:03", "t1", 1, 13, 150_000),
        ("2026-11-25T14:28", "t1", 1, 13, 150_000),
        ("2026-11-25T14:53", "t1", 1, 13, 150_000),
    ]
    store.dispose()


_SCOPES = [("agent", "planner"), ("team", "research"), ("thread", "t1"), ("user", "alice")]


def test_rebuild_recomputes_the_hourly_rollup(any_db_url: str) -> None:
    store = _store_with_rows(any_db_url)
    before = _hourly(store)
    rebuild_rollups(store, hourly_since=START - timedelta(days=1))
    assert _hourly(store) == before
    store.dispose()


def test_prune_forgets_old_hours_and_minutes(db_url: str) -> None:
    store = _store_with_rows(db_url)
    with store.write_engine.begin() as conn:
        prune_hourly(conn, hours_before=START + timedelta(hours=1), minutes_before=START + timedelta(minutes=30))
    assert _hourly(store) == []
    with store.engine.connect() as conn:
        left = conn.execute(sa.select(THREAD_MINUTES_TABLE.c.minute)).scalars().all()
    assert left == ["2026-11-25T14:53"]
    store.dispose()
