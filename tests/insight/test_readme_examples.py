"""The README's examples of ``tollgate alerts``, ``usage --forecast`` and ``advise`` are real output.

Each command runs on the fixture database (``tests/insight/fixture.py``) with the fixture's clock,
and the README must show exactly what it printed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.cli.advise import print_advice
from proxy.cli.forecast import print_forecast
from proxy.clock import fixed_clock
from proxy.config import parse_config
from proxy.recording.store import Store
from tests.insight.fixture import LIMITS, NOW, SINCE, build_fixture

README = (Path(__file__).parents[2] / "README.md").read_text()


def _example(command: str) -> str:
    found = re.search(rf"```text\n\$ {re.escape(command)}\n(.*?)```", README, re.S)
    assert found is not None, f"the README has no example of `{command}`"
    return found.group(1)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Store]:
    url = f"sqlite:///{tmp_path_factory.mktemp('readme') / 'fixture.db'}"
    return url, build_fixture(url)


def _printed(capsys: pytest.CaptureFixture[str], run: Callable[[], object]) -> str:
    capsys.readouterr()
    run()
    return capsys.readouterr().out


def test_the_alerts_example(fixture: tuple[str, Store], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{fixture[0]}"\n')
    assert _printed(capsys, lambda: main(["alerts", "--config", str(path)])) == _example("tollgate alerts")


def test_the_forecast_example(fixture: tuple[str, Store], capsys: pytest.CaptureFixture[str]) -> None:
    url, store = fixture
    config = parse_config(f'[database]\nurl = "{url}"\n{LIMITS}', "fixture.toml")
    printed = _printed(capsys, lambda: print_forecast(config, store, None, None, False, clock=fixed_clock(NOW)))
    assert printed == _example("tollgate usage --forecast")


def test_the_advise_example(fixture: tuple[str, Store], capsys: pytest.CaptureFixture[str]) -> None:
    printed = _printed(capsys, lambda: print_advice({}, fixture[1], SINCE, NOW, None, False))
    assert printed == _example("tollgate advise --since 2026-11-01 --until 2026-11-25T12:00")
