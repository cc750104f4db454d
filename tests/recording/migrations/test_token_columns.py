"""Token counts past 2**31 (a provider reporting 3e9 tokens) are recorded, on new and upgraded databases."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

from pricing import TOKEN_COLUMNS
from proxy.recording.records import UsageRecord
from proxy.recording.store import Store
from proxy.recording.tables import USAGE_TABLE
from tests.recording.migrations.conftest import create_released_schema

HUGE = 3_000_000_000

_RECORD = UsageRecord(
    request_id="huge",
    started_at=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
    ended_at=datetime(2026, 11, 30, 12, 0, 1, tzinfo=UTC),
    method="POST",
    endpoint="/v1/chat/completions",
    provider="openai",
    model_requested="gpt-4o",
    model_served="gpt-4o-2024-08-06",
    stream=False,
    status=200,
    user_id="alice",
    team_id=None,
    thread_id=None,
    agent=None,
    key_name=None,
    tags=None,
    **dict.fromkeys(TOKEN_COLUMNS, HUGE),  # type: ignore[arg-type]
    service_tier=None,
    cost_pico=10**15,
    unpriced=False,
    usage_source="reported",
    latency_ms=1.0,
    ttfb_ms=None,
    error_type=None,
)


def _write_and_read(store: Store) -> dict[str, int]:
    assert store.insert_records([_RECORD]) == {"huge"}
    with store.engine.connect() as conn:
        row = conn.execute(USAGE_TABLE.select()).one()._mapping
    return {column: row[column] for column in TOKEN_COLUMNS}


def test_token_columns_are_every_integer_column_of_the_record() -> None:
    counted = {f.name for f in dataclasses.fields(UsageRecord) if f.name.endswith("_tokens")}
    assert counted == set(TOKEN_COLUMNS)


def test_three_billion_tokens_in_every_column_are_recorded(any_db_url: str, make_store: Callable[[str], Store]) -> None:
    store = make_store(any_db_url)
    store.create_tables()
    assert _write_and_read(store) == dict.fromkeys(TOKEN_COLUMNS, HUGE)


def test_an_upgraded_database_records_three_billion_tokens(any_db_url: str, make_store: Callable[[str], Store]) -> None:
    create_released_schema(any_db_url)
    store = make_store(any_db_url)
    store.create_tables()
    assert _write_and_read(store) == dict.fromkeys(TOKEN_COLUMNS, HUGE)
