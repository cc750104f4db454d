"""Usage rows out of the database: streamed exports, and archives of old rows.

Exports read a thousand rows at a time, each page its own short read, so a table
of any size is never loaded whole, nor held for the length of an export. An archive
moves rows older than a date into a gzip-compressed JSON-lines file, written and
fsynced before any row is deleted, then deletes them in batches; rollups and
invoices stay as they were. An archive can be imported back (the rollups already
count its rows, so they are left alone).
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import sqlalchemy as sa

from proxy.recording.records import UsageRecord
from proxy.recording.store import Store
from proxy.recording.tables import USAGE_TABLE

COLUMNS = tuple(c.name for c in USAGE_TABLE.columns)
_DELETE_BATCH = 1_000
_PAGE_ROWS = 1_000
_TIME_COLUMNS = ("started_at", "ended_at")
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV Injection"). A leading
# quote is escaped too, so that dropping one leading quote always gives back the value that was stored.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def spreadsheet_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: text starting like a formula gets a leading ``'``.

    Any client can choose its user id in pass-through mode, so ids, agents, models and tags are
    untrusted text. Numbers are left as they are.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def iter_usage(store: Store, since: datetime | None = None, until: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Every usage row in the window, oldest first, a page of rows at a time.

    Each page is its own short read, after the last row of the one before (by start time, then
    request id): on SQLite a read that lasted the whole export would hold back the recorder's
    commits for as long.
    """
    t = USAGE_TABLE.c
    query = sa.select(USAGE_TABLE).order_by(t.started_at, t.request_id).limit(_PAGE_ROWS)
    if since is not None:
        query = query.where(t.started_at >= since)
    if until is not None:
        query = query.where(t.started_at < until)
    page = query
    while True:
        with store.engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(page)]
        for data in rows:
            yield _with_utc_times(data)
        if len(rows) < _PAGE_ROWS:
            return
        last_started, last_id = rows[-1]["started_at"], rows[-1]["request_id"]
        after = sa.or_(t.started_at > last_started, sa.and_(t.started_at == last_started, t.request_id > last_id))
        page = query.where(after)


def _with_utc_times(data: dict[str, Any]) -> dict[str, Any]:
    for name in _TIME_COLUMNS:
        value = data[name]
        if isinstance(value, datetime) and value.tzinfo is None:
            data[name] = value.replace(tzinfo=UTC)  # SQLite keeps UTC without an offset
    return data


def write_csv(rows: Iterator[dict[str, Any]], out: IO[str]) -> int:
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow(
            {k: (v.isoformat() if isinstance(v, datetime) else spreadsheet_cell(v)) for k, v in row.items()}
        )
        count += 1
    return count


def write_jsonl(rows: Iterator[dict[str, Any]], out: IO[bytes]) -> int:
    count = 0
    for row in rows:
        out.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
        count += 1
    return count


def archive(store: Store, before: datetime, folder: Path) -> tuple[Path, int]:
    """Move rows that started before ``before`` into ``folder``; returns the file and the row count."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"usage-before-{before.astimezone(UTC):%Y%m%dT%H%M%SZ}.jsonl.gz"
    ids: list[str] = []
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as file:
        for row in iter_usage(store, until=before):
            file.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
            ids.append(row["request_id"])
        file.close()
        raw.flush()
        os.fsync(raw.fileno())  # on disk before anything is deleted
    for start in range(0, len(ids), _DELETE_BATCH):
        chunk = ids[start : start + _DELETE_BATCH]
        with store.write_engine.begin() as conn:
            conn.execute(USAGE_TABLE.delete().where(USAGE_TABLE.c.request_id.in_(chunk)))
    return path, len(ids)


def import_archive(store: Store, path: Path) -> int:
    """Put an archive's rows back; rows already present are skipped. Returns the rows read."""
    count = 0
    batch: list[UsageRecord] = []
    with gzip.open(path, "rb") as file:
        for line in file:
            data = orjson.loads(line)
            for name in _TIME_COLUMNS:
                data[name] = datetime.fromisoformat(data[name])
            batch.append(UsageRecord(**data))
            count += 1
            if len(batch) == 1_000:
                store.insert_records(batch, rollup=False)
                batch.clear()
    if batch:
        store.insert_records(batch, rollup=False)
    return count
