"""``tollgate serve`` upgrades the database as it starts, or refuses to start saying which database and why."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from proxy.recording.migrations import HEAD
from proxy.recording.store import Store
from tests.fakeprovider import free_port
from tests.recording.migrations.conftest import create_released_schema, insert_rows, kept, read_rows, released_rows


def _config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[recorder]\njournal_dir = "{tmp_path / "journal"}"\n')
    return config


def _serve(config: Path, port: int, workers: int = 1) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "proxy.cli", "serve", "--config", str(config), "--port", str(port)]
    command += ["--workers", str(workers)]
    return subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env={**os.environ, "TOLLGATE_LOG_LEVEL": "info"}
    )


def test_serve_upgrades_a_released_database_as_it_starts(
    any_db_url: str, tmp_path: Path, make_store: Callable[[str], Store]
) -> None:
    create_released_schema(any_db_url)
    rows = released_rows(make_store(any_db_url).dialect)
    insert_rows(any_db_url, rows)
    before = read_rows(any_db_url, list(rows))
    port = free_port()
    with _serve(_config(tmp_path, any_db_url), port) as process:
        try:
            ready, deadline = False, time.monotonic() + 30
            while not ready and process.poll() is None and time.monotonic() < deadline:
                try:
                    ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
                except httpx.TransportError:
                    time.sleep(0.02)
            process.send_signal(signal.SIGTERM)
            _, errors = process.communicate(timeout=30)
        finally:
            process.kill()
    assert ready, errors
    assert process.returncode == 0, errors
    assert f"from Tollgate 0.1.0's tables (stamped 0001) to {HEAD}" in errors
    with make_store(any_db_url).engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
    assert kept(before, read_rows(any_db_url, list(rows))) == before


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_refuses_a_database_newer_than_itself_naming_it(
    workers: int, any_db_url: str, tmp_path: Path, make_store: Callable[[str], Store]
) -> None:
    url = sa.make_url(any_db_url).set(password="s3cret").render_as_string(hide_password=False)
    store = make_store(url)
    store.create_tables()
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    process = _serve(_config(tmp_path, url), free_port(), workers)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 3
    shown = sa.make_url(url).render_as_string(hide_password=True)
    assert f"ERROR tollgate.app: tollgate cannot start: database {shown} is at schema revision 0999" in errors
    assert "Run that version (or newer), or restore a backup taken before the upgrade" in errors
    assert "s3cret" not in errors
