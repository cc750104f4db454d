"""Rollups equal the raw rows, whatever the workload, and can be rebuilt from them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.cli import main
from proxy.recording.records import UsageRecord
from proxy.recording.reports import usage_report
from proxy.recording.rollups import rebuild_rollups
from proxy.recording.store import Store
from tests.recording.test_store import _BASE

START = datetime(2026, 10, 30, tzinfo=UTC)

records = st.builds(
    lambda i, minutes, user, team, agent, model, tokens, cost: dataclasses.replace(
        _BASE,
        request_id=f"r{i}",
        started_at=START + timedelta(minutes=minutes),
        user_id=user,
        team_id=team,
        agent=agent,
        model_requested=model,
        input_tokens=tokens,
        cost_pico=cost,
        unpriced=cost is None,
    ),
    st.integers(),
    st.integers(0, 60 * 24 * 5),
    st.sampled_from([None, "alice", "bob"]),
    st.sampled_from([None, "research"]),
    st.sampled_from([None, "planner", "coder"]),
    st.sampled_from(["gpt-4o", "gpt-4o-mini"]),
    st.integers(0, 10_000),
    st.one_of(st.none(), st.integers(0, 10**9)),
)
GROUPINGS = [None, "user", "team", "agent", "model", "provider", "day", "month"]


def _unique(batch: list[UsageRecord]) -> list[UsageRecord]:
    return list({r.request_id: r for r in batch}.values())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(records, max_size=30), max_size=4), st.sampled_from(GROUPINGS))
def test_rollups_equal_the_raw_rows(batches: list[list[UsageRecord]], group_by: str | None) -> None:
    store = Store("sqlite://")
    store.create_tables()
    for batch in batches:
        store.insert_records(_unique(batch))  # a request id seen before is skipped, and not rolled up twice
    since = START + timedelta(days=1)
    for window in ({}, {"since": since}, {"since": since, "until": since + timedelta(days=2)}):
        raw = usage_report(store, group_by, use_rollups=False, **window)  # type: ignore[arg-type]
        assert usage_report(store, group_by, **window) == raw  # type: ignore[arg-type]
    assert usage_report(store, "user", filters={"user": "alice"}) == usage_report(
        store, "user", filters={"user": "alice"}, use_rollups=False
    )
    store.dispose()


def test_rebuild_recomputes_the_rollups(any_db_url: str) -> None:
    store = Store(any_db_url)
    store.create_tables()
    batch = [
        dataclasses.replace(_BASE, request_id=f"r{i}", started_at=START + timedelta(hours=7 * i)) for i in range(20)
    ]
    store.insert_records(batch)
    before = {g: usage_report(store, g) for g in GROUPINGS}
    assert rebuild_rollups(store) > 0
    assert {g: usage_report(store, g) for g in GROUPINGS} == before
    assert {g: usage_report(store, g, use_rollups=False) for g in GROUPINGS} == before
    store.dispose()


def test_rollups_rebuild_command(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(db_url)
    store.create_tables()
    store.insert_records([_BASE])
    store.dispose()
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')
    assert main(["rollups", "rebuild", "--config", str(config)]) == 0
    assert "rebuilt 2 rollup rows" in capsys.readouterr().out
