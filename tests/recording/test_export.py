"""Exports stream every row; an archive moves old rows out, keeps the rollups, and imports back."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from proxy.cli import main
from proxy.recording.export import archive, import_archive, iter_usage, write_csv
from proxy.recording.reports import usage_report
from proxy.recording.store import Store
from tests.recording.test_store import _BASE

START = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def filled(any_db_url: str) -> Store:
    store = Store(any_db_url)
    store.create_tables()
    store.insert_records(
        [dataclasses.replace(_BASE, request_id=f"r{i:03d}", started_at=START + timedelta(days=i)) for i in range(40)]
    )
    return store


def test_export_streams_every_row_in_the_window(filled: Store) -> None:
    rows = list(iter_usage(filled, since=START + timedelta(days=10), until=START + timedelta(days=20)))
    assert [r["request_id"] for r in rows] == [f"r{i:03d}" for i in range(10, 20)]
    out = io.StringIO()
    assert write_csv(iter(rows), out) == 10
    parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert parsed[0]["request_id"] == "r010" and parsed[0]["cost_pico"] == "150000"
    filled.dispose()


def test_archive_moves_old_rows_keeps_rollups_and_imports_back(filled: Store, tmp_path: Path) -> None:
    before_report = usage_report(filled, "day")
    path, count = archive(filled, START + timedelta(days=30), tmp_path)
    assert count == 30
    assert [r["request_id"] for r in iter_usage(filled)] == [f"r{i:03d}" for i in range(30, 40)]
    assert usage_report(filled, "day") == before_report  # the rollups still count the archived rows
    assert import_archive(filled, path) == 30
    assert len(list(iter_usage(filled))) == 40
    assert usage_report(filled, "day") == before_report == usage_report(filled, "day", use_rollups=False)
    filled.dispose()


def test_export_and_archive_commands(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(db_url)
    store.create_tables()
    store.insert_records([_BASE])
    store.dispose()
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')
    assert main(["export", "usage", "--config", str(config), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("r0,")
    folder = tmp_path / "archive"
    assert main(["archive", "--config", str(config), "--before", "2100-01-01", "--folder", str(folder)]) == 0
    assert "archived 1 usage rows" in capsys.readouterr().out
    [archived] = folder.iterdir()
    assert main(["archive", "--config", str(config), "--import", str(archived)]) == 0
    assert "imported 1 usage rows" in capsys.readouterr().out
    assert main(["export", "usage", "--config", str(config)]) == 0
    assert orjson.loads(capsys.readouterr().out)["request_id"] == "r0"
