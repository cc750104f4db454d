"""A journal that cannot be written never means "billed and lost": records go straight to the database,
and when the database is away too, requests are refused before they reach the provider."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.config import parse_config
from proxy.recording.store import Store
from tests.conftest import chat_chunks, chat_completion, database_available, json_answer, sse
from tests.fakeprovider import FakeProvider

CHAT = "/v1/chat/completions"
BODY = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
STREAM = b'{"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real filesystem with no space left: a 64 KiB tmpfs, filled."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"a full disk needs a tmpfs mount, which this machine refused: {mounted.stderr.decode().strip()}")
    try:
        (disk / "journal").mkdir()
        with open(disk / "filler", "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"\0" * 4096)
            except OSError:
                pass
        yield disk / "journal"
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _config(provider: FakeProvider, db_url: str, journal: Path) -> str:
    return (
        f'[database]\nurl = "{db_url}"\n[recorder]\nflush_interval = 60\njournal_dir = "{journal}"\n'
        f'[[providers]]\nname = "fake"\nbase_url = "{provider.base_url}"\nmodels = ["*"]\nretries = 0\n'
    )


def _count(db_url: str) -> int:
    store = Store(db_url)
    try:
        return store.count_records()
    finally:
        store.dispose()


def test_with_the_journal_disk_full_every_answer_has_its_row_before_it_goes_out(
    provider: FakeProvider, db_url: str, full_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provider.answer("POST", CHAT, json_answer(chat_completion()), sse(chat_chunks()))
    app = create_app(parse_config(_config(provider, db_url, full_disk)))
    with caplog.at_level(logging.ERROR), TestClient(app) as client:
        first = client.post(CHAT, content=BODY)
        assert first.status_code == 200 and first.json()["usage"]["prompt_tokens"] == 12
        assert _count(db_url) == 1  # written through: flush_interval is 60 s
        assert client.post(CHAT, content=STREAM).status_code == 200
        assert _count(db_url) == 2
    assert "JOURNAL WRITE FAILED" in caplog.text and "ENOSPC" in caplog.text


@pytest.mark.postgres
def test_with_the_journal_disk_full_and_the_database_away_requests_are_refused_not_lost(
    provider: FakeProvider,
    own_database: str,
    full_disk: Path,
) -> None:
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    app = create_app(parse_config(_config(provider, own_database, full_disk)))
    with TestClient(app) as client:
        database_available(own_database, False)
        answered = client.post(CHAT, content=BODY)  # billed upstream, held in memory
        refused = client.post(CHAT, content=BODY)
        database_available(own_database, True)
        assert answered.status_code == 200
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "recording_unavailable"
        assert len(provider.requests) == 1  # the refused request never reached the provider
        client.portal.call(client.app_state["recorder"].flush)  # type: ignore[union-attr]
        assert client.post(CHAT, content=BODY).status_code == 200
    assert _count(own_database) == 3  # the answered one, the refusal, the last one
