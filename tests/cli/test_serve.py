"""`tollgate serve` as a real process: ready quickly, proxies, and flushes its records on SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import chat_completion, json_answer
from tests.fakeprovider import FakeProvider, free_port


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 20) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise AssertionError("tollgate serve did not become ready")


def test_serve_proxies_and_flushes_on_sigterm(provider: FakeProvider, tmp_path: Path) -> None:
    db = tmp_path / "serve.db"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n[recorder]\nflush_interval = 5\njournal_dir = "{tmp_path / "journal"}"\n'
        f'[[providers]]\nname = "fake"\nbase_url = "{provider.base_url}"\n'
    )
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "serve", "--config", str(config), "--port", str(port)],
        stderr=subprocess.PIPE,
        env={**os.environ, "TOLLGATE_LOG_LEVEL": "warning"},
    ) as process:
        try:
            _wait_ready(f"http://127.0.0.1:{port}/readyz", process)
            provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
            response = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                content=b'{"model": "gpt-4o-mini", "messages": []}',
                headers={"x-user-id": "carol"},
            )
            assert response.content == chat_completion()
            # The recorder waits 5 s to fill a batch; SIGTERM must flush it before the process exits.
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
        finally:
            process.kill()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT user_id, input_tokens FROM usage_records").fetchall()
    conn.close()
    assert rows == [("carol", 12)]


def test_serve_refuses_an_invalid_config_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[providers]]\nname = "x"\nbase_url = "ftp://nope"\n')
    result = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "serve", "--config", str(config)], capture_output=True, timeout=30
    )
    assert result.returncode == 2
    assert f"{config}: providers[0].base_url = 'ftp://nope'" in result.stderr.decode()
