"""Every export has the same formats and filters, dollars beside picodollars, and tags as tags."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.cli import main
from proxy.recording.store import Store
from tests.recording.test_store import _BASE

START = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> str:
    store = Store(db_url)
    store.create_tables()
    rows: list[dict[str, Any]] = [
        {"user_id": "alice", "tags": '{"env": "prod", "feature": "a;b=c"}', "cost_pico": 91_840_000},
        {"user_id": "alice", "tags": '{"env": "dev"}', "agent": "planner", "team_id": "research"},
        {"user_id": "bob", "team_id": "ops", "cost_pico": None, "unpriced": True, "model_requested": "my-model"},
        {"user_id": "bob", "thread_id": "conv-9"},
    ]
    store.insert_records(
        [
            dataclasses.replace(
                _BASE,
                request_id=f"r{n}",
                started_at=START + timedelta(days=n),
                **({"agent": None, "team_id": None} | row),
            )
            for n, row in enumerate(rows)
        ]
    )
    store.dispose()
    path = tmp_path / "c.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n')
    return str(path)


def _export(capsys: pytest.CaptureFixture[str], config: str, fmt: str, *args: str) -> list[dict[str, Any]]:
    assert main(["export", "usage", "--config", config, "--format", fmt, *args]) == 0
    out = capsys.readouterr().out
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(out)))
    if fmt == "json":
        parsed: list[dict[str, Any]] = orjson.loads(out)
        return parsed
    return [orjson.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_every_format_has_cost_usd_beside_cost_pico(config: str, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    rows = _export(capsys, config, fmt)
    assert [r["request_id"] for r in rows] == ["r0", "r1", "r2", "r3"]
    columns = list(rows[0])
    assert columns.index("cost_usd") == columns.index("cost_pico") + 1
    assert rows[0]["cost_usd"] == "0.00009184"
    assert rows[2]["cost_usd"] in (None, "")  # unpriced: no dollars, never "0"


def test_tags_are_an_object_in_json_and_name_value_pairs_in_csv(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for fmt in ("json", "jsonl"):
        assert _export(capsys, config, fmt)[0]["tags"] == {"env": "prod", "feature": "a;b=c"}
    [first, second, *_] = _export(capsys, config, "csv")
    assert first["tags"] == "env=prod;feature=a\\;b\\=c"
    assert second["tags"] == "env=dev"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--user", "alice"], ["r0", "r1"]),
        (["--team", "ops"], ["r2"]),
        (["--agent", "planner"], ["r1"]),
        (["--thread", "conv-9"], ["r3"]),
        (["--model", "my-model"], ["r2"]),
        (["--tag", "env=prod"], ["r0"]),
        (["--since", "2026-10-02", "--until", "2026-10-04"], ["r1", "r2"]),
    ],
)
def test_usage_export_takes_every_filter(
    config: str, capsys: pytest.CaptureFixture[str], args: list[str], expected: list[str]
) -> None:
    assert [r["request_id"] for r in _export(capsys, config, "jsonl", *args)] == expected


def test_an_empty_json_export_is_an_empty_array(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _export(capsys, config, "json", "--user", "nobody") == []


def test_usage_export_refuses_an_impossible_window(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "usage", "--config", config, "--since", "2026-12-05", "--until", "2026-12-01"]) == 2
    assert "not before" in capsys.readouterr().err
