"""The store and reports hold the same on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pricing import TOKEN_COLUMNS
from proxy.recording.records import UsageRecord
from proxy.recording.reports import usage_report
from proxy.recording.store import Store
from proxy.recording.tables import USAGE_TABLE

_BASE = UsageRecord(
    request_id="r0",
    started_at=datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC),
    ended_at=datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC),
    method="POST",
    endpoint="/v1/chat/completions",
    provider="openai",
    model_requested="gpt-4o",
    model_served="gpt-4o-2024-08-06",
    stream=False,
    status=200,
    user_id="alice",
    team_id="research",
    thread_id=None,
    agent="planner",
    key_name=None,
    tags=None,
    input_tokens=10,
    cached_input_tokens=4,
    cache_write_tokens=0,
    cache_write_1h_tokens=0,
    output_tokens=3,
    reasoning_tokens=1,
    audio_input_tokens=0,
    audio_output_tokens=0,
    service_tier=None,
    cost_pico=150_000,
    unpriced=False,
    usage_source="reported",
    latency_ms=12.5,
    ttfb_ms=10.0,
    error_type=None,
)


def test_record_fields_are_the_table_columns() -> None:
    assert [f.name for f in dataclasses.fields(UsageRecord)] == [c.name for c in USAGE_TABLE.columns]


def test_every_field_round_trips_and_a_repeated_id_is_skipped(any_db_url: str) -> None:
    store = Store(any_db_url)
    store.create_tables()
    full = dataclasses.replace(
        _BASE,
        stream=True,
        thread_id="conv-42",
        key_name="ci",
        tags='{"env": "prod"}',
        cache_write_tokens=7,
        cache_write_1h_tokens=8,
        audio_input_tokens=5,
        audio_output_tokens=6,
        service_tier="flex",
        cost_pico=None,
        unpriced=True,
        ttfb_ms=None,
        error_type="upstream_timeout",
    )
    # More rows than one SQLite statement takes, with None, booleans, floats and times in every position.
    records = [dataclasses.replace(full if i % 2 else _BASE, request_id=f"r{i}") for i in range(1203)]
    assert store.insert_records(records) == {r.request_id for r in records}
    assert store.insert_records([records[5], dataclasses.replace(_BASE, request_id="new")]) == {"new"}
    with store.engine.connect() as conn:
        rows = {row.request_id: row for row in conn.execute(USAGE_TABLE.select())}
    assert len(rows) == 1204
    for record in (records[0], records[1], records[1202]):
        row = rows[record.request_id]
        for field in dataclasses.fields(UsageRecord):
            stored, expected = getattr(row, field.name), getattr(record, field.name)
            if isinstance(expected, datetime):
                stored = stored.replace(tzinfo=UTC) if stored.tzinfo is None else stored
            assert stored == expected, field.name
    store.dispose()


def test_tiny_costs_sum_exactly_in_sql(any_db_url: str) -> None:
    store = Store(any_db_url)
    store.create_tables()
    # $0.00000015 each, stored as 150,000 picodollars: a thousand sum to exactly $0.00015.
    records = [dataclasses.replace(_BASE, request_id=f"r{i}") for i in range(1000)]
    store.insert_records(records)
    [row] = usage_report(store)
    assert row.cost_usd * 1000 == Decimal("0.15")
    assert row.requests == 1000
    store.dispose()


def test_day_and_month_groups_are_utc(any_db_url: str) -> None:
    store = Store(any_db_url)
    store.create_tables()
    late = _BASE
    early = dataclasses.replace(_BASE, request_id="r1", started_at=_BASE.started_at + timedelta(seconds=2))
    store.insert_records([late, early])
    assert [r.group for r in usage_report(store, "day")] == ["2026-11-30", "2026-12-01"]
    assert [r.group for r in usage_report(store, "month")] == ["2026-11", "2026-12"]
    since = datetime(2026, 12, 1, tzinfo=UTC)
    assert [r.requests for r in usage_report(store, since=since)] == [1]
    store.dispose()


def test_report_filters_and_unpriced_count(any_db_url: str) -> None:
    store = Store(any_db_url)
    store.create_tables()
    unpriced = dataclasses.replace(_BASE, request_id="u", user_id="bob", cost_pico=None, unpriced=True)
    store.insert_records([_BASE, unpriced])
    [bob] = usage_report(store, "user", filters={"user": "bob"})
    assert (bob.group, bob.requests, bob.cost_usd, bob.unpriced_requests) == ("bob", 1, Decimal(0), 1)
    with pytest.raises(ValueError, match="cannot group by 'colour'"):
        usage_report(store, "colour")
    store.dispose()


def test_ping_says_whether_the_database_answers(tmp_path: object) -> None:
    assert Store("sqlite://").ping()
    assert not Store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1").ping()


def test_the_usage_row_and_record_hold_every_token_kind_of_token_counts() -> None:
    """Token kinds are listed once, in ``TokenCounts``: the row and the record must follow it."""
    record_columns = {f.name for f in dataclasses.fields(UsageRecord) if f.name.endswith("_tokens")}
    table_columns = {c.name for c in USAGE_TABLE.columns if c.name.endswith("_tokens")}
    assert record_columns == table_columns == set(TOKEN_COLUMNS)
