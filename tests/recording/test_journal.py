"""Nothing lost: the journal keeps finished records through a database outage and a kill -9."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
import sqlalchemy as sa

from proxy.recording.journal import SET_ASIDE_FILE, Journal, read_segment
from proxy.recording.recorder import Recorder
from proxy.recording.store import Store
from proxy.recording.tables import COUNTERS_TABLE, USAGE_TABLE
from tests.conftest import Tollgate, chat_completion, database_available, json_answer
from tests.fakeprovider import FakeProvider, free_port
from tests.recording.test_store import _BASE

CHAT = "/v1/chat/completions"
LIMIT = '[[limits]]\nscope = "user"\nmax_usd = "100"\n'


def test_segments_round_trip_and_a_torn_line_is_skipped(tmp_path: Path) -> None:
    journal = Journal(tmp_path, max_bytes=1 << 20)
    journal.append(_BASE, ())
    segment = journal.seal()
    with segment.open("ab") as file:
        file.write(b'{"record": {"request_id": "torn"')  # the process died mid-write
    [entry] = list(read_segment(segment, own=True))
    assert entry.record == _BASE
    journal.close()


def test_a_dead_workers_segments_are_orphans_a_live_ones_are_not(tmp_path: Path) -> None:
    dead = Journal(tmp_path, max_bytes=1 << 20)
    dead.append(_BASE, ())
    live = Journal(tmp_path, max_bytes=1 << 20)
    assert live.orphans() == []  # the other worker still holds its lock
    dead.close()  # a real death frees the lock the same way
    assert [p.name.split("-")[0] for p in live.orphans()] == [dead.holder.split("-")[0]]
    live.close()


def test_journal_stops_taking_records_when_full(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(tmp_path, max_bytes=1500)
    for _ in range(5):
        journal.append(_BASE, ())
    assert journal.full
    assert "JOURNAL FULL" in caplog.text
    assert sum(1 for _ in read_segment(journal.seal(), own=True)) < 5
    journal.close()


def _serve(config: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "serve", "--config", str(config), "--port", str(port)],
        env={**os.environ, "TOLLGATE_LOG_LEVEL": "warning"},
    )
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, "tollgate serve exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _rows(db_url: str) -> tuple[int, int, int]:
    """(rows, distinct request ids, spend charged to counters)."""
    store = Store(db_url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(USAGE_TABLE)).scalar_one()
            ids = conn.execute(sa.select(sa.func.count(sa.distinct(USAGE_TABLE.c.request_id)))).scalar_one()
            spent = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(COUNTERS_TABLE.c.spent_pico), 0))).scalar_one()
        return int(rows), int(ids), int(spent)
    finally:
        store.dispose()


def _wait_rows(db_url: str, expected: int) -> tuple[int, int, int]:
    deadline = time.monotonic() + 20
    while True:
        found = _rows(db_url)
        if found[0] >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_records_survive_kill_9_and_are_replayed_once_at_the_next_start(provider: FakeProvider, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'kill.db'}"
    config = tmp_path / "config.toml"
    config.write_text(
        f'{LIMIT}[database]\nurl = "{db_url}"\n'
        f'[recorder]\nflush_interval = 30\njournal_dir = "{tmp_path / "journal"}"\n'
        f'[[providers]]\nname = "fake"\nbase_url = "{provider.base_url}"\n'
    )
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    port = free_port()
    first = _serve(config, port)
    body = orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 10, "messages": []})
    answered = [
        httpx.post(f"http://127.0.0.1:{port}{CHAT}", content=body, headers={"x-user-id": "alice"}).status_code
        for _ in range(20)
    ]
    assert answered == [200] * 20
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert _rows(db_url)[0] == 0  # the recorder was still waiting to fill its batch

    second = _serve(config, free_port())
    try:
        rows, ids, spent = _wait_rows(db_url, 20)
    finally:
        second.terminate()
        second.wait()
    assert (rows, ids) == (20, 20)
    assert spent == 20 * 12 * 150_000 + 20 * 5 * 600_000  # gpt-4o-mini: 12 in, 5 out each, charged once
    assert list((tmp_path / "journal").glob("*.jsonl")) == []


@pytest.mark.postgres
def test_proxy_keeps_serving_while_the_database_is_down_and_loses_nothing(
    provider: FakeProvider, own_database: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "{own_database}"\n'
        f'[recorder]\nflush_interval = 0.05\njournal_dir = "{tmp_path / "journal"}"\n'
        f'[[providers]]\nname = "fake"\nbase_url = "{provider.base_url}"\n'
    )
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    port = free_port()
    server = _serve(config, port)
    body = b'{"model": "gpt-4o-mini", "messages": []}'

    async def burst(count: int) -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            calls = [client.post(f"http://127.0.0.1:{port}{CHAT}", content=body) for _ in range(count)]
            return [r.status_code for r in await asyncio.gather(*calls)]

    try:
        assert asyncio.run(burst(10)) == [200] * 10
        _wait_rows(own_database, 10)
        database_available(own_database, False)
        assert asyncio.run(burst(30)) == [200] * 30  # served, with the database away
        time.sleep(0.5)
        assert list((tmp_path / "journal").glob("*.jsonl"))
        database_available(own_database, True)
        rows, ids, _ = _wait_rows(own_database, 40)
    finally:
        server.terminate()
        server.wait()
    assert (rows, ids) == (40, 40)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a nice value per thread is Linux's")
def test_rows_are_written_by_one_thread_that_yields_the_cpu_to_requests(
    tollgate: Tollgate, provider: FakeProvider
) -> None:
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    assert tollgate.client.post(CHAT, json={"model": "gpt-4o", "messages": []}).status_code == 200
    assert len(tollgate.rows()) == 1  # written by the writer thread, which starts with the first batch
    [writer] = [t for t in threading.enumerate() if t.name.startswith("tollgate-recorder_")]
    assert writer.native_id is not None
    assert os.getpriority(os.PRIO_PROCESS, writer.native_id) == min(os.getpriority(os.PRIO_PROCESS, 0) + 19, 19)


def test_a_backlog_is_caught_up_at_normal_priority(db_url: str) -> None:
    store = Store(db_url)
    store.create_tables()
    records = [dataclasses.replace(_BASE, request_id=f"r{i}") for i in range(50)]

    async def record() -> set[str]:
        recorder = Recorder(store, batch_size=5, flush_interval=60)
        for entry in records:
            recorder.submit(entry)
        await recorder.flush()
        names = {t.name.rsplit("_", 1)[0] for t in threading.enumerate()}
        await recorder.close()
        return names

    assert "tollgate-recorder-catch-up" in asyncio.run(record())
    assert store.count_records() == 50
    store.dispose()


def test_a_record_the_database_refuses_is_set_aside_and_the_rest_are_written(
    any_db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(any_db_url)
    store.create_tables()
    journal = Journal(tmp_path / "journal", max_bytes=1 << 20)
    good = [dataclasses.replace(_BASE, request_id=f"good-{i}") for i in range(5)]
    bad = dataclasses.replace(_BASE, request_id="bad", endpoint=None)  # type: ignore[arg-type]  # NOT NULL

    async def record() -> tuple[bool, bool]:
        recorder = Recorder(store, journal=journal, flush_interval=60)
        for entry in [*good[:2], bad, *good[2:]]:
            recorder.submit(entry)
        first = await recorder.flush()
        second = await recorder.flush()  # nothing is retried
        await recorder.close()
        return first, second

    assert asyncio.run(record()) == (True, True)
    with store.engine.connect() as conn:
        ids = {row[0] for row in conn.execute(sa.select(USAGE_TABLE.c.request_id))}
    store.dispose()
    assert ids == {r.request_id for r in good}
    [line] = (tmp_path / "journal" / SET_ASIDE_FILE).read_bytes().splitlines()
    assert orjson.loads(line)["record"]["request_id"] == "bad"
    assert "SET ASIDE" in caplog.text and "bad" in caplog.text


def test_journaling_per_batch_writes_nothing_on_submit_and_journals_before_the_database(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'missing' / 'usage.db'}")  # its folder does not exist: every write fails
    journal = Journal(tmp_path / "journal", max_bytes=1 << 20)
    records = [dataclasses.replace(_BASE, request_id=f"r{i}") for i in range(3)]

    async def record() -> tuple[int, bool]:
        recorder = Recorder(store, journal=journal, flush_interval=60, journal_on_submit=False)
        assert all(recorder.submit(entry) for entry in records)  # nothing for the caller to write through
        on_disk = sum(p.stat().st_size for p in (tmp_path / "journal").glob("*.jsonl"))
        return on_disk, await recorder.flush()

    on_disk, written = asyncio.run(record())
    assert (on_disk, written) == (0, False)
    kept = [
        e.record.request_id for p in sorted((tmp_path / "journal").glob("*.jsonl")) for e in read_segment(p, own=True)
    ]
    assert kept == ["r0", "r1", "r2"]
    journal.close()
    store.dispose()
