"""A spend limit bounds a request with the dearest price version that may price its row, never a cheaper one."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli import main
from tests.fakeprovider import FakeProvider
from tests.pricehistory.conftest import start, write_config

# gpt-4o-mini costs $0.60 per 1M output tokens in the map: 600 tokens bound well under a cent.
DEARER = '{"gpt-4o-mini": {"output": "1000"}}'  # 600 tokens: $0.60, past the limit


def _import(config: Path, text: str, effective: str) -> None:
    sheet = config.parent / "dearer.json"
    sheet.write_text(text)
    assert main(["prices", "--config", str(config), "import", str(sheet), "--effective", effective]) == 0


@pytest.mark.parametrize(
    ("effective", "why"),
    [("2026-11-01", "the version in force is dearer than the config's"), ("2026-12-01", "a later one is dearer")],
)
def test_a_request_is_bounded_by_the_dearest_version_that_may_price_it(
    provider: FakeProvider, db_url: str, tmp_path: Path, effective: str, why: str
) -> None:
    config = write_config(tmp_path / "config.toml", provider, db_url, max_usd="0.01")
    with start(config, provider) as running:
        assert running.post("alice").status_code == 200  # the config's prices alone: it fits
    _import(config, DEARER, effective)
    with start(config, provider) as running:
        refused = running.post("alice")
        assert refused.status_code == 429, why
        assert refused.json()["error"]["code"] == "spend_limit_exceeded"


def test_a_cheaper_later_version_does_not_loosen_the_bound(provider: FakeProvider, db_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.toml", provider, db_url, max_usd="0.01")
    _import(config, DEARER, "2026-11-01")
    _import(config, '{"gpt-4o-mini": {"output": "0.01"}}', "2026-12-01")
    with start(config, provider) as running:  # at NOV_10 the dear version prices the row: it bounds it
        assert running.post("alice").status_code == 429
