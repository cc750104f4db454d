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


def _serve(
    tmp_path: Path, config_text: str, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n{config_text}')
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "TOLLGATE_ADMIN_KEY")}
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "serve", "--config", str(config), "--port", str(port), *args],
        stderr=subprocess.PIPE,
        env={**environ, "TOLLGATE_LOG_LEVEL": "info", **(env or {})},
    )
    _wait_ready(f"http://127.0.0.1:{port}/readyz", process)
    return process, port


def _stop(process: subprocess.Popen[bytes]) -> str:
    """SIGTERM, then everything the server logged."""
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=15)
    finally:
        process.kill()
        process.wait()
    return err.decode()


OPENAI = '[[providers]]\nname = "openai"\nbase_url = "{url}"\napi_key_env = "OPENAI_API_KEY"\n'


def test_serve_says_where_it_listens_and_what_to_export_without_a_needless_key_warning(
    provider: FakeProvider, tmp_path: Path
) -> None:
    process, port = _serve(tmp_path, OPENAI.format(url=provider.base_url))
    log = _stop(process)
    assert f"listening on http://127.0.0.1:{port}" in log
    assert f"export OPENAI_BASE_URL=http://127.0.0.1:{port}/v1" in log
    assert "dashboard and admin API: off (set $TOLLGATE_ADMIN_KEY" in log
    assert "providers: 1 (openai)" in log and "database: sqlite:///" in log
    assert "OPENAI_API_KEY" not in log.replace("api_key_env", "")  # pass-through: the key is the client's
    assert "WARNING" not in log
    for jargon in ("lease", "extension", "Uvicorn", "Waiting for application"):
        assert jargon not in log


def test_a_busy_port_fails_before_anything_says_ready(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "config.toml"
        config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n')
        result = subprocess.run(
            [sys.executable, "-m", "proxy.cli", "serve", "--config", str(config), "--port", str(port)],
            capture_output=True,
            timeout=30,
        )
    err = result.stderr.decode()
    assert result.returncode == 1
    assert err.startswith(f"tollgate cannot start: cannot listen on 127.0.0.1:{port}: the port is in use")
    assert "listening" not in err and "ready" not in err


def test_access_log_is_off_by_default_but_refusals_and_failures_are_logged(
    provider: FakeProvider, tmp_path: Path
) -> None:
    process, port = _serve(tmp_path, OPENAI.format(url=provider.base_url) + "retries = 0\n")
    base = f"http://127.0.0.1:{port}/v1/chat/completions"
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    assert httpx.post(base, content=b'{"model": "gpt-4o-mini", "messages": []}').status_code == 200
    provider.answer("POST", "/v1/chat/completions", json_answer(b'{"error": {"message": "boom"}}', status=500))
    headers = {"x-user-id": "dave", "authorization": "Bearer sk-secret-client-key"}
    assert httpx.post(base, content=b'{"model": "gpt-4o-mini", "messages": []}', headers=headers).status_code == 500
    assert httpx.post(base, content=b"{not json").status_code == 400
    log = _stop(process)
    access = [line for line in log.splitlines() if "tollgate.access" in line]
    assert len(access) == 2, log
    assert "POST /v1/chat/completions 500 user=dave model=gpt-4o-mini" in access[0]
    assert " 400 " in access[1] and "error=invalid_json" in access[1]
    assert "sk-secret-client-key" not in log


def test_access_log_flag_logs_every_request_with_its_cost(provider: FakeProvider, tmp_path: Path) -> None:
    process, port = _serve(tmp_path, OPENAI.format(url=provider.base_url), "--access-log")
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    response = httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        content=b'{"model": "gpt-4o-mini", "messages": []}',
        headers={"x-user-id": "erin"},
    )
    assert response.status_code == 200
    [line] = [line for line in _stop(process).splitlines() if "tollgate.access" in line]
    assert "POST /v1/chat/completions 200 user=erin model=gpt-4o-mini-2024-07-18 tokens=12/5" in line
    assert "cost=$0.0000048" in line and "ms id=" in line
