"""``tollgate db current|upgrade``: what an operator reads and runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from proxy.cli import main
from proxy.recording.migrations import HEAD, database_name
from proxy.recording.migrations.schema import alembic_config, describe, pending
from proxy.recording.store import Store
from tests.recording.migrations.conftest import create_released_schema


def _db(tmp_path: Path, url: str, action: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    config = tmp_path / "db.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')
    code = main(["db", action, "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


def test_current_names_the_newest_revision(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(db_url)
    store.create_tables()
    store.dispose()
    assert _db(tmp_path, db_url, "current", capsys)[:2] == (0, f"{db_url}: {describe(HEAD)}, the newest\n")


def test_current_on_a_released_database_says_what_upgrade_will_do(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_released_schema(db_url)
    code, out, _ = _db(tmp_path, db_url, "current", capsys)
    assert code == 1
    assert out.startswith(f"{db_url}: Tollgate 0.1.0's tables, with no revision recorded: 0001 (Baseline: the schema")
    steps = ", ".join(step.id for step in pending("0001"))
    assert out.endswith(f"; not the newest, {describe(HEAD)}: `tollgate db upgrade` records it and runs {steps}\n")


def test_current_on_a_database_at_an_older_revision_names_both(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(db_url)
    with store.write_engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
    store.dispose()
    code, out, _ = _db(tmp_path, db_url, "current", capsys)
    assert code == 1
    assert out == (
        f"{db_url}: 0001 (Baseline: the schema of Tollgate 0.1.0); not the newest, {describe(HEAD)}: "
        f"`tollgate db upgrade` runs {', '.join(step.id for step in pending('0001'))}\n"
    )


def test_upgrade_brings_a_released_database_to_the_newest(
    any_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_released_schema(any_db_url)
    code, out, _ = _db(tmp_path, any_db_url, "upgrade", capsys)
    assert (code, out) == (
        0,
        f"{database_name(any_db_url)}: upgraded from Tollgate 0.1.0's tables to {describe(HEAD)}\n",
    )
    assert _db(tmp_path, any_db_url, "upgrade", capsys)[:2] == (
        0,
        f"{database_name(any_db_url)}: already at {describe(HEAD)}, the newest\n",
    )
    assert _db(tmp_path, any_db_url, "current", capsys)[0] == 0


def test_current_and_upgrade_name_a_revision_this_tollgate_does_not_know(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(db_url)
    store.create_tables()
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    store.dispose()
    code, out, _ = _db(tmp_path, db_url, "current", capsys)
    assert (code, out) == (
        1,
        f"{db_url}: 0999, which this Tollgate does not know (its newest is {HEAD}): a newer Tollgate upgraded it\n",
    )
    code, _, err = _db(tmp_path, db_url, "upgrade", capsys)
    assert code == 1
    assert err.startswith(f"tollgate: database {db_url} is at schema revision 0999, which this Tollgate does not know")


@pytest.mark.parametrize("action", ["current", "upgrade"])
def test_an_unreachable_database_is_named_without_its_password(
    action: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _db(tmp_path, "postgresql://tollgate:s3cret@127.0.0.1:1/usage", action, capsys)
    assert (code, out) == (1, "")
    assert "database postgresql://tollgate:***@127.0.0.1:1/usage" in err
    assert "s3cret" not in err
