"""Exports read in pages, each a short read of its own, and still give every row once, in order."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

from proxy.recording.export import iter_usage
from proxy.recording.store import Store
from tests.recording.test_store import _BASE

START = datetime(2026, 10, 1, tzinfo=UTC)


def test_pages_give_every_row_once_in_order_even_when_start_times_tie(any_db_url: str) -> None:
    store = Store(any_db_url)
    store.create_tables()
    # 2,500 rows over 3 start times: every page boundary falls among rows that started at the same moment.
    store.insert_records(
        [
            dataclasses.replace(_BASE, request_id=f"r{i:05d}", started_at=START + timedelta(hours=i % 3))
            for i in range(2_500)
        ]
    )
    exported = [(row["started_at"], row["request_id"]) for row in iter_usage(store, since=START)]
    store.dispose()
    assert len(exported) == len(set(exported)) == 2_500
    assert exported == sorted(exported)


def test_a_write_commits_while_an_export_is_under_way(db_url: str) -> None:
    store = Store(db_url)
    store.create_tables()
    store.insert_records([dataclasses.replace(_BASE, request_id=f"r{i:05d}") for i in range(2_500)])
    rows = iter_usage(store)
    next(rows)  # the export has read its first page, and is paused between pages
    writer = threading.Thread(target=store.insert_records, args=([dataclasses.replace(_BASE, request_id="late")],))
    writer.start()
    writer.join(timeout=5)
    assert not writer.is_alive() and store.count_records() == 2_501
    assert sum(1 for _ in rows) == 2_499  # the rest of the first read; "late" sorts before them
    store.dispose()
