"""Relative paths in a config file mean the file's folder; read-only commands never make an empty database."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from proxy.cli import main
from proxy.config import load_config
from proxy.recording.store import Store
from tests.recording.test_store import _BASE


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current folder: not the config's."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _config(folder: Path, body: str = '[database]\nurl = "sqlite:///data/tollgate.db"\n') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(body + '[recorder]\njournal_dir = "journal"\n')
    return path


def test_relative_paths_in_a_config_file_resolve_against_its_folder(tmp_path: Path, elsewhere: Path) -> None:
    config = load_config(_config(tmp_path / "deploy"), environ={})
    assert config.database.url == f"sqlite:///{tmp_path / 'deploy' / 'data' / 'tollgate.db'}"
    assert config.recorder.journal_dir == str(tmp_path / "deploy" / "journal")
    defaults = load_config(_config(tmp_path / "plain", body=""), environ={})
    assert defaults.database.url == f"sqlite:///{tmp_path / 'plain' / 'tollgate.db'}"


def test_absolute_memory_and_environment_urls_are_left_as_written(tmp_path: Path, elsewhere: Path) -> None:
    for url in (f"sqlite:///{tmp_path / 'abs.db'}", "sqlite://", "postgresql://db.internal/tollgate"):
        assert load_config(_config(tmp_path / "d", f'[database]\nurl = "{url}"\n'), environ={}).database.url == url
    from_env = load_config(_config(tmp_path / "d"), environ={"TOLLGATE_DATABASE_URL": "sqlite:///here.db"})
    assert from_env.database.url == "sqlite:///here.db"  # the environment's is relative to the current folder


def test_usage_run_from_another_folder_reads_the_configs_database(
    tmp_path: Path, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path / "deploy")
    (tmp_path / "deploy" / "data").mkdir()
    store = Store(load_config(config, environ={}).database.url)
    store.create_tables()
    store.insert_records([_BASE])
    store.dispose()
    assert main(["usage", "--config", str(config), "--json", "--group-by", "user"]) == 0
    assert [row["group"] for row in orjson.loads(capsys.readouterr().out)] == [_BASE.user_id]
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [
        ["usage"],
        ["limits"],
        ["export", "usage", "--format", "csv"],
        ["invoices", "list"],
        ["invoices", "show", "inv_2026-10_user_alice"],
        ["invoices", "export", "--format", "csv"],
    ],
)
def test_read_only_commands_say_there_is_no_database_and_make_none(
    tmp_path: Path, elsewhere: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    config = _config(tmp_path / "deploy")
    database = tmp_path / "deploy" / "data" / "tollgate.db"
    (tmp_path / "deploy" / "data").mkdir()
    assert main([*command, "--config", str(config)]) == 1
    assert capsys.readouterr().err == f"tollgate: no database at {database} yet: nothing has been recorded there\n"
    assert not database.exists() and list(elsewhere.iterdir()) == []
