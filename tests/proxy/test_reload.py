"""Config reload without a restart: a valid file takes over, an invalid one is refused whole."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.config import load_config
from tests.fakeprovider import FakeProvider
from tests.limits.test_limits import BODY, CHAT, COST, PRICES, _answer


def _write(path: Path, provider: FakeProvider, db_url: str, max_usd: str) -> None:
    path.write_text(
        f'{PRICES}\n[[limits]]\nmax_usd = "{max_usd}"\n[database]\nurl = "{db_url}"\n'
        f'[recorder]\njournal_dir = "{path.parent / "journal"}"\n'
        f'[[providers]]\nname = "fake"\nbase_url = "{provider.base_url}"\n'
    )


def test_reload_applies_a_new_limit_and_refuses_an_invalid_file(
    provider: FakeProvider, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.toml"
    _write(path, provider, db_url, str(COST / 2))
    _answer(provider)
    with TestClient(create_app(load_config(path))) as client:
        reloader = client.app_state["reloader"]
        assert client.post(CHAT, content=BODY, headers={"x-user-id": "alice"}).status_code == 429

        _write(path, provider, db_url, str(COST * 10))
        assert reloader.reload()
        assert client.post(CHAT, content=BODY, headers={"x-user-id": "alice"}).status_code == 200

        path.write_text(path.read_text().replace('max_usd = "', 'max_usd = "-'))
        with caplog.at_level(logging.ERROR, logger="tollgate.reload"):
            assert not reloader.reload()
        assert f"{path}: limits[0].max_usd = '-" in caplog.text
        assert "the old config stays in force" in caplog.text
        assert client.post(CHAT, content=BODY, headers={"x-user-id": "alice"}).status_code == 200
