"""``tollgate usage --forecast`` prints the hand-computed projections and limit dates."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from proxy.cli import main
from proxy.cli.forecast import print_forecast
from proxy.clock import fixed_clock
from proxy.config import parse_config
from tests.insight.test_forecast import NOW, _store

LIMIT = '[[limits]]\nscope = "user"\nid = "bob"\nwindow = "month"\nmax_usd = "40"\n'


def test_forecast_table_shows_each_projection_and_limit(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = _store(db_url)
    config = parse_config(f'[database]\nurl = "{db_url}"\n{LIMIT}', "forecast.toml")
    assert print_forecast(config, store, None, None, False, clock=fixed_clock(NOW)) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert ["user", "bob", "$13.00", "$6.00", "5.50", "$46.00"] in lines
    assert ["user", "alice", "$34.00", "$2.00", "5.50", "$45.00"] in lines
    assert ["team", "research", "$34.00", "$2.00", "5.50", "$45.00"] in lines
    assert ["total", "$47.00", "$3.71", "5.50", "$67.43"] in lines
    assert ["user", "bob", "month", "2026-11", "$13.00", "$40.00", "$6.00", "2026-11-30", "00:00", "UTC"] in lines


def test_forecast_json_for_one_user(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = _store(db_url)
    config = parse_config(f'[database]\nurl = "{db_url}"\n', "forecast.toml")
    assert print_forecast(config, store, "bob", None, True, clock=fixed_clock(NOW)) == 0
    body = orjson.loads(capsys.readouterr().out)
    assert [u["projected_month_end_usd"] for u in body["users"]] == ["46.000000000000"]
    assert body["teams"] == [] and body["total"] is None


def test_the_usage_command_takes_forecast(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _store(db_url)
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n')
    assert main(["usage", "--forecast", "--config", str(path)]) == 0
    assert "Month-end projection at" in capsys.readouterr().out
