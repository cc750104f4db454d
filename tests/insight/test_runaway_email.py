"""A runaway loop through the running proxy: one email through a local SMTP server, and one listed alert."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.cli import main
from proxy.clock import fixed_clock
from tests.conftest import chat_completion, json_answer, make_config
from tests.fakeprovider import FakeProvider
from tests.insight.smtp import Inbox, smtp_server

CHAT = "/v1/chat/completions"
BODY = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "again"}]}'


def _settings(port: int) -> str:
    return f"""
[alerts.email]
smtp_host = "127.0.0.1"
smtp_port = {port}
starttls = false
to = ["ops@example.com"]
dashboard_url = "http://tollgate.test/dashboard"

[anomalies]
enabled = true
runaway_requests_per_minute = 5
check_interval = 0.05
"""


def test_a_runaway_loop_sends_one_email_and_is_listed(
    provider: FakeProvider, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    inbox = Inbox()
    # A stopped clock: every request falls in one minute, which a real one could split in two.
    clock = fixed_clock(datetime(2026, 11, 25, 14, 3, 20, tzinfo=UTC))
    with (
        smtp_server(inbox) as port,
        TestClient(create_app(make_config(provider, db_url, _settings(port)), clock=clock)) as client,
    ):
        started = time.monotonic()
        for _ in range(8):
            response = client.post(CHAT, content=BODY, headers={"x-thread-id": "loop-1", "x-user-id": "bob"})
            assert response.status_code == 200
        while not inbox.messages and time.monotonic() < started + 60:  # the promise: within a minute
            time.sleep(0.05)
        time.sleep(0.3)  # several more looks: none may send a second email
    assert len(inbox.messages) == 1
    message = inbox.messages[0]
    assert message["Subject"] == "Tollgate: a runaway thread loop-1"
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert re.search(r"\b[6-8] requests and [0-9]+ tokens in the minute 2026-11-25T14:03 UTC", body)
    assert "Dashboard:  http://tollgate.test/dashboard#thread=loop-1" in body
    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')
    assert main(["alerts", "--config", str(config)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 and listed[1].split()[1:4] == ["runaway", "thread", "loop-1"]
