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
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import sqlalchemy as sa

from pricing import pico_to_usd
from proxy.money import money_text
from proxy.recording.records import UsageRecord
from proxy.recording.reports import FILTER_COLUMNS, tag_expression
from proxy.recording.store import Store
from proxy.recording.tables import USAGE_TABLE

EXPORT_FORMATS = ("csv", "json", "jsonl")
COLUMNS = tuple(c.name for c in USAGE_TABLE.columns)
EXPORT_COLUMNS = tuple(
    name for column in COLUMNS for name in ((column, "cost_usd") if column == "cost_pico" else (column,))
)
"""An export's columns: the table's, with ``cost_usd`` (a decimal string) beside ``cost_pico``."""
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


def iter_usage(
    store: Store,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    filters: Mapping[str, str | None] | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every usage row in the window (and matching ``filters`` and ``tags``), oldest first, a page at a time.

    ``filters`` maps user, team, agent, thread or model to the value it must have, as in reports.
    Each page is its own short read, after the last row of the one before (by start time, then
    request id): on SQLite a read that lasted the whole export would hold back the recorder's
    commits for as long.
    """
    t = USAGE_TABLE.c
    query = sa.select(USAGE_TABLE).order_by(t.started_at, t.request_id).limit(_PAGE_ROWS)
    for name, value in (filters or {}).items():
        if value is not None:
            query = query.where(t[FILTER_COLUMNS[name]] == value)
    for name, value in (tags or {}).items():
        query = query.where(tag_expression(name, store.dialect) == value)
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


def export_row(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as exports write it: ``cost_usd`` beside ``cost_pico``, tags as an object (None without)."""
    pico = row.get("cost_pico")
    out = {name: row.get(name) for name in COLUMNS}
    out["cost_usd"] = None if pico is None else money_text(pico_to_usd(int(pico)))
    out["tags"] = _tags_object(row.get("tags"))
    return {name: out[name] for name in EXPORT_COLUMNS}


def _tags_object(text: str | None) -> dict[str, str] | str | None:
    if not text:
        return None
    try:
        tags = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text  # not written by Tollgate: give it back as it is
    return tags if isinstance(tags, dict) else text


def tags_cell(tags: object) -> str:
    """Tags for one CSV cell: ``name=value;...`` sorted by name; ``\\``, ``;`` and ``=`` escaped by a backslash."""
    if not isinstance(tags, dict):
        return "" if tags is None else str(tags)

    def escape(text: object) -> str:
        return str(text).replace("\\", "\\\\").replace(";", "\\;").replace("=", "\\=")

    return ";".join(f"{escape(name)}={escape(value)}" for name, value in sorted(tags.items()))


def write_csv(rows: Iterator[dict[str, Any]], out: IO[str]) -> int:
    """Stored rows as CSV (``EXPORT_COLUMNS``); text that a spreadsheet would run is escaped."""
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS)
    writer.writeheader()
    count = 0
    for row in rows:
        data = export_row(row)
        data["tags"] = tags_cell(data["tags"])
        writer.writerow(
            {k: (v.isoformat() if isinstance(v, datetime) else spreadsheet_cell(v)) for k, v in data.items()}
        )
        count += 1
    return count


def write_jsonl(rows: Iterator[dict[str, Any]], out: IO[bytes]) -> int:
    """Stored rows as JSON lines, one object a line, tags an object."""
    count = 0
    for row in rows:
        out.write(orjson.dumps(export_row(row), option=orjson.OPT_APPEND_NEWLINE))
        count += 1
    return count


def write_json(rows: Iterator[dict[str, Any]], out: IO[bytes]) -> int:
    """Stored rows as one JSON array, written a row at a time (never built whole in memory)."""
    count = 0
    out.write(b"[")
    for row in rows:
        out.write(b"\n" if count == 0 else b",\n")
        out.write(orjson.dumps(export_row(row)))
        count += 1
    out.write(b"\n]\n" if count else b"]\n")
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
