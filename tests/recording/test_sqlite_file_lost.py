"""The SQLite file deleted or replaced while serving: /readyz says so, and a restart writes every row since."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.recording.journal import Journal, read_segment
from proxy.recording.recorder import Recorder
from proxy.recording.records import UsageRecord
from proxy.recording.sqlite import sqlite_file
from proxy.recording.store import Store
from tests.conftest import Tollgate, chat_completion, json_answer, make_config
from tests.fakeprovider import FakeProvider
from tests.recording.test_store import _BASE

CHAT = "/v1/chat/completions"
BODY = b'{"model": "gpt-4o-mini", "messages": []}'


def _lose(database: Path, how: str) -> None:
    """Delete the database's files (``rm tollgate.db*``), or put a backup taken now in the file's place."""
    if how == "replaced":
        backup = database.with_name("backup.db")
        with sqlite3.connect(database) as source, sqlite3.connect(backup) as copy:
            source.backup(copy)
        source.close()
        copy.close()
        os.replace(backup, database)
        return
    for path in database.parent.glob(database.name + "*"):
        path.unlink()


def _answered(client: TestClient, count: int) -> list[str]:
    responses = [client.post(CHAT, content=BODY) for _ in range(count)]
    assert [r.status_code for r in responses] == [200] * count
    return [r.headers["x-tollgate-request-id"] for r in responses]


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_rows_answered_after_the_sqlite_file_is_lost_are_written_after_a_restart(
    provider: FakeProvider, db_url: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    config = make_config(provider, db_url)
    database = Path(db_url.removeprefix("sqlite:///"))
    with TestClient(create_app(config)) as client, caplog.at_level(logging.ERROR, logger="tollgate.recorder"):
        Tollgate(client, config).rows(expected=len(_answered(client, 3)))
        _lose(database, how)
        since = _answered(client, 5)
        Tollgate(client, config).flush()  # the recorder writes into the lost file, and keeps the journal
        ready = client.get("/readyz")
    assert ready.status_code == 503 and str(database) in ready.json()["reason"]
    assert f"{database}" in caplog.text and "Restart Tollgate" in caplog.text
    with TestClient(create_app(config)) as client:  # the restart, on the same config
        tollgate = Tollgate(client, config)
        written = {row["request_id"] for row in tollgate.rows(expected=len(since))}
        tollgate.store.dispose()
    assert set(since) <= written


class _DeletedJustAfterAWrite(Store):
    """A store whose file someone deletes right after a batch is written: the race the recorder must see."""

    def insert_records(
        self,
        records: Sequence[UsageRecord],
        after: Callable[[sa.Connection, set[str]], None] | None = None,
        *,
        rollup: bool = True,
    ) -> set[str]:
        inserted = super().insert_records(records, after, rollup=rollup)
        path = sqlite_file(self.url)
        assert path is not None
        path.unlink()
        return inserted


def test_journal_segments_written_to_a_file_deleted_since_are_kept(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _DeletedJustAfterAWrite(db_url)
    store.create_tables()
    journal = Journal(tmp_path / "journal", max_bytes=1 << 20)

    async def record() -> bool:
        recorder = Recorder(store, journal=journal, flush_interval=60)
        recorder.submit(_BASE)
        written = await recorder.flush()
        await recorder.close()
        return written

    with caplog.at_level(logging.ERROR, logger="tollgate.recorder"):
        assert asyncio.run(record())
    store.dispose()
    [kept] = (tmp_path / "journal").glob("*.jsonl")
    assert [entry.record for entry in read_segment(kept, own=False)] == [_BASE]
    assert "DATABASE FILE LOST" in caplog.text and "Restart Tollgate" in caplog.text


def test_a_database_with_no_file_or_an_intact_one_has_no_file_problem(any_db_url: str) -> None:
    for url in (any_db_url, "sqlite://"):
        store = Store(url)
        store.create_tables()
        assert store.file_problem() is None
        store.dispose()
