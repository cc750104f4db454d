"""SQLite files made read-only or immutable under load: the server keeps answering, and loses no record.

Each test runs ``tollgate serve`` as a real process, since what is guarded against, a SIGBUS from
SQLite's memory-mapped WAL index, would kill the test runner too. While requests flow, the database's
files are made unwritable, one after another; the server must go on answering, keep the records in its
journal, and write every one of them once the files are writable again.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import chat_completion, json_answer
from tests.fakeprovider import FakeProvider, free_port

CHAT = "/v1/chat/completions"
BODY = b'{"model": "gpt-4o-mini", "messages": []}'
Change = Callable[[Path, bool], None]  # makes one file unwritable (True) or writable again (False)


def _chattr(path: Path, immutable: bool) -> None:
    subprocess.run(["chattr", "+i" if immutable else "-i", str(path)], check=True, capture_output=True)


def _chmod(path: Path, read_only: bool) -> None:
    path.chmod(0o444 if read_only else 0o644)


def _immutable_files_or_skip(folder: Path) -> None:
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        pytest.skip("chattr +i needs root and chattr (e2fsprogs)")
    probe = folder / "probe"
    probe.write_bytes(b"")
    done = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this filesystem has no immutable flag: {done.stderr.strip()}")
    _chattr(probe, False)


def _unprivileged() -> list[str]:
    """A command prefix under which mode bits bind: as root, write permission is never checked."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("as root, chmod 444 binds only without CAP_DAC_OVERRIDE, which needs setpriv (util-linux)")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", "--bounding-set", caps, "--inh-caps", caps]


class _Load:
    """Requests sent back to back by a few clients until stopped; every status, or error, kept."""

    def __init__(self, port: int) -> None:
        self.answers: list[int | str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, args=(port,)) for _ in range(4)]

    def _send(self, port: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while not self._stop.is_set():
                try:
                    self.answers.append(client.post(CHAT, content=BODY).status_code)
                except httpx.TransportError as exc:
                    self.answers.append(type(exc).__name__)
                    time.sleep(0.05)

    def __enter__(self) -> _Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


@pytest.fixture
def serve(
    provider: FakeProvider, tmp_path: Path
) -> Iterator[Callable[[list[str]], tuple[subprocess.Popen[bytes], int]]]:
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    started: list[subprocess.Popen[bytes]] = []
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "db" / "tollgate.db"}"\n'
        f'[recorder]\nflush_interval = 0.05\njournal_dir = "{tmp_path / "journal"}"\n'
        f'[[providers]]\nname = "fake"\nbase_url = "{provider.base_url}"\n'
    )
    (tmp_path / "db").mkdir(mode=0o777)
    (tmp_path / "journal").mkdir(mode=0o777)

    def start(prefix: list[str]) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        command = [*prefix, sys.executable, "-m", "proxy.cli", "serve", "--config", str(config), "--port", str(port)]
        process = subprocess.Popen(command, env={**os.environ, "TOLLGATE_LOG_LEVEL": "critical"})
        started.append(process)
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "tollgate serve exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    return process, port
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "tollgate serve did not become ready"
            time.sleep(0.05)

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _rows(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        count = int(conn.execute("SELECT count(*) FROM usage_records").fetchone()[0])
    conn.close()
    return count


def _serve_through(
    serve: Callable[[list[str]], tuple[subprocess.Popen[bytes], int]], folder: Path, change: Change, prefix: list[str]
) -> None:
    """Serve under load while ``change`` makes each database file unwritable, then writable again."""
    process, port = serve(prefix)
    database = folder / "db" / "tollgate.db"
    changed: list[Path] = []
    try:
        with _Load(port) as load:
            time.sleep(1)
            for path in sorted(database.parent.glob("tollgate.db*")):  # as `chattr +i tollgate.db*` does
                change(path, True)
                changed.append(path)
                time.sleep(0.5)
            time.sleep(2)
            assert process.poll() is None, f"tollgate serve died with signal {-(process.returncode or 0)}"
        for path in changed:
            change(path, False)
        changed.clear()
        assert set(load.answers) == {200}, f"answers while the files were unwritable: {set(load.answers)}"
        deadline = time.monotonic() + 20
        while _rows(database) < len(load.answers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _rows(database) == len(load.answers)
    finally:
        for path in changed:
            change(path, False)  # an immutable file left behind could not even be deleted


@pytest.mark.slow
def test_the_server_survives_its_sqlite_files_becoming_immutable(
    serve: Callable[[list[str]], tuple[subprocess.Popen[bytes], int]], tmp_path: Path
) -> None:
    _immutable_files_or_skip(tmp_path)
    _serve_through(serve, tmp_path, _chattr, [])


@pytest.mark.slow
def test_the_server_survives_its_sqlite_files_becoming_read_only(
    serve: Callable[[list[str]], tuple[subprocess.Popen[bytes], int]], tmp_path: Path
) -> None:
    _serve_through(serve, tmp_path, _chmod, _unprivileged())
