"""What serve says at start: where it listens and what to do next, and warnings only for what is really wrong."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.config import parse_config
from proxy.startup import listen_url, start_block, start_warnings

PROVIDER = '[[providers]]\nname = "openai"\nbase_url = "https://api.openai.com/v1"\napi_key_env = "OPENAI_API_KEY"\n'
KEY = f'[[keys]]\nsha256 = "{"a" * 64}"\nuser = "alice"\n'


def test_the_block_names_the_base_url_to_export_the_dashboard_and_the_database() -> None:
    block = start_block(
        parse_config(PROVIDER, "c.toml"), "http://127.0.0.1:8787", admin_on=True, database="db", version="1"
    )
    assert block.count("export OPENAI_BASE_URL=http://127.0.0.1:8787/v1") == 1
    assert "export ANTHROPIC_BASE_URL=http://127.0.0.1:8787\n" in block
    exported = [line.split()[1].split("=")[0] for line in block.splitlines() if line.strip().startswith("export ")]
    assert exported == ["OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL"]  # OpenAI's, most used, first
    assert "dashboard: http://127.0.0.1:8787/dashboard" in block
    assert "database: db" in block and "providers: 1 (openai)" in block


def test_the_block_says_why_the_dashboard_is_off() -> None:
    block = start_block(parse_config(PROVIDER, "c.toml"), "http://h:1", admin_on=False, database="db", version="1")
    assert "dashboard and admin API: off (set $TOLLGATE_ADMIN_KEY to turn them on)" in block


@pytest.mark.parametrize(("host", "url"), [("0.0.0.0", "http://127.0.0.1:80"), ("::1", "http://[::1]:80")])
def test_a_wildcard_or_ipv6_address_becomes_a_url_an_app_can_use(host: str, url: str) -> None:
    assert listen_url(host, 80) == url


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        (PROVIDER, {}, []),  # pass-through: each client sends its own key
        (PROVIDER + KEY, {"OPENAI_API_KEY": "sk"}, []),
        (PROVIDER + KEY, {}, ["provider openai: $OPENAI_API_KEY is not set"]),
        ('[auth]\nmode = "managed"\n' + KEY + PROVIDER, {}, ["provider openai: $OPENAI_API_KEY is not set"]),
        ("", {}, ["no [[providers]] in c.toml"]),
    ],
)
def test_warnings_only_for_what_the_mode_needs(text: str, environ: dict[str, str], expected: list[str]) -> None:
    warnings = start_warnings(parse_config(text, "c.toml"), environ)
    assert len(warnings) == len(expected)
    assert all(w.startswith(e) for w, e in zip(warnings, expected, strict=True))


def test_the_app_logs_its_warnings_and_start_message_once_started(
    caplog: pytest.LogCaptureFixture, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parse_config(f'[database]\nurl = "{db_url}"\n', "c.toml")
    with caplog.at_level(logging.INFO, logger="tollgate.app"), TestClient(create_app(config, start_message="HELLO")):
        pass
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "tollgate.app"]
    assert messages[0][0] == "WARNING" and "no [[providers]]" in messages[0][1]
    assert ("INFO", "HELLO") in messages
