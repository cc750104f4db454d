"""Config reload without a restart: a valid file takes over, an invalid one is refused whole."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.config import Config, documented_settings, load_config
from proxy.core import Metering
from proxy.keys import hash_key
from proxy.reload import RESTART_ONLY, ConfigReloader
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


# A change of each part that a reload hands to the running server, and how the server shows it took effect:
# (TOML added to the file, what the running app answers, that answer before, that answer after).
_KEY = "tg-reload-test-key"
RELOADED: dict[str, tuple[str, Callable[[TestClient], object], object, object]] = {
    "providers": (
        '[[providers]]\nname = "second"\nbase_url = "BASE_URL"\nmodels = ["other-*"]\n',
        lambda client: _chat(client, model="other-model").status_code,
        404,
        200,
    ),
    "keys": (
        f'[[keys]]\nsha256 = "{hash_key(_KEY)}"\nuser = "bob"\n',
        lambda client: _handler(client).attribution.read([], None, _handler(client).keys.identify(_KEY)).user,
        None,
        "bob",
    ),
    "auth": (
        f'[auth]\nmode = "managed"\n[[keys]]\nsha256 = "{hash_key(_KEY)}"\n',
        lambda client: _chat(client).status_code,
        200,
        401,
    ),
    "attribution": (
        '[attribution]\nuser_header = "X-Who"\n',
        lambda client: _handler(client).attribution.read([(b"x-who", b"alice")]).user,
        None,
        "alice",
    ),
    "teams": (
        '[teams.research]\nmembers = ["alice"]\n',
        lambda client: _handler(client).attribution.read([(b"x-user-id", b"alice")]).team,
        None,
        "research",
    ),
    "limits": (
        f'[[limits]]\nmax_usd = "{COST / 2}"\n',
        lambda client: _chat(client).status_code,
        200,
        429,
    ),
    "rate_limits": (
        '[[rate_limits]]\nscope = "user"\nrequests_per_minute = 7\n',
        lambda client: [rule.limit for rule in _handler(client).rates.rules],
        [],
        [7],
    ),
    "pricing": (
        '[pricing.models."reloaded-model"]\ninput = 1\noutput = 1\n',
        lambda client: _handler(client).catalog.lookup("reloaded-model") is not None,
        False,
        True,
    ),
    "server.max_body_bytes": ("[server]\nmax_body_bytes = 10\n", lambda client: _chat(client).status_code, 200, 413),
    "server.access_log": (
        "[server]\naccess_log = true\n",
        lambda client: client.app_state["metering"].access_log,
        False,
        True,
    ),
    "server.cost_header": (
        "[server]\ncost_header = false\n",
        lambda client: "x-tollgate-cost-usd" in _chat(client).headers,
        True,
        False,
    ),
    "server.on_client_disconnect": (
        '[server]\non_client_disconnect = "cancel"\n',
        lambda client: client.app_state["proxy"].cancel_on_disconnect,
        False,
        True,
    ),
    "budget.image_tokens": ("[budget]\nimage_tokens = 7\n", lambda client: _handler(client).media_tokens, 3000, 7),
    "billing": (
        '[billing]\nmarkup_percent = "12.5"\n',
        lambda client: client.app_state["billing"].settings.markup_percent,
        Decimal(0),
        Decimal("12.5"),
    ),
}

# A change of each part read only at start; a reload warns that it waits for a restart.
RESTARTED = {
    "server.host": '[server]\nhost = "0.0.0.0"\n',
    "server.port": "[server]\nport = 9999\n",
    "server.workers": "[server]\nworkers = 2\n",
    "server.metrics_user_labels": "[server]\nmetrics_user_labels = true\n",
    "database": '[database]\nurl = "sqlite:///elsewhere.db"\n',
    "recorder": "[recorder]\nbatch_size = 7\n",
    "budget.lease_seconds": "[budget]\nlease_seconds = 5\n",
    "budget.lease_ttl": "[budget]\nlease_ttl = 5\n",
    "budget.sync_interval": "[budget]\nsync_interval = 5\n",
    "budget.limits_when_db_down": '[budget]\nlimits_when_db_down = "allow"\n',
    "alerts": '[alerts]\nwebhook_url = "http://hooks.test/alerts"\n',
    "anomalies": "[anomalies]\nenabled = true\n",
    "usage_handlers": 'usage_handlers = ["tests.proxy.test_hooks:record_hook"]\n',
}


def _handler(client: TestClient) -> Metering:
    metering: Metering = client.app_state["metering"]
    return metering


def _chat(client: TestClient, model: str = "metered-model") -> Any:
    body = BODY.replace(b"metered-model", model.encode())
    return client.post(CHAT, content=body, headers={"x-user-id": "alice"})


def _write_with(path: Path, provider: FakeProvider, db_url: str, change: str = "") -> None:
    change = change.replace("BASE_URL", provider.base_url)
    path.write_text(
        f'{change}\n{PRICES}\n[database]\nurl = "{db_url}"\n'
        f'[recorder]\njournal_dir = "{path.parent / "journal"}"\n'
        f'[[providers]]\nname = "fake"\nbase_url = "{provider.base_url}"\nmodels = ["metered-*"]\n'
    )


def test_every_setting_is_either_reloaded_or_restart_only() -> None:
    assert set(RESTARTED) == set(RESTART_ONLY)
    for name, _ in documented_settings():
        owners = [part for part in (*RESTART_ONLY, *RELOADED) if name == part or name.startswith(f"{part}.")]
        assert len(owners) == 1, (name, owners)


@pytest.mark.parametrize("part", RELOADED)
def test_a_reloaded_part_takes_effect_without_a_warning(
    part: str, provider: FakeProvider, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    change, observe, before, after = RELOADED[part]
    path = tmp_path / "config.toml"
    _write_with(path, provider, db_url)
    _answer(provider)
    with TestClient(create_app(load_config(path))) as client:
        assert observe(client) == before
        _write_with(path, provider, db_url, change)
        with caplog.at_level(logging.INFO, logger="tollgate.reload"):
            assert client.app_state["reloader"].reload()
        assert observe(client) == after
    assert [r.levelname for r in caplog.records if r.name == "tollgate.reload"] == ["INFO"]


@pytest.mark.parametrize("part", RESTART_ONLY)
def test_a_changed_restart_only_part_is_named_in_a_warning(
    part: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("")
    applied: list[Config] = []
    reloader = ConfigReloader(load_config(path), lambda config, catalog: applied.append(config))
    path.write_text(RESTARTED[part])
    with caplog.at_level(logging.WARNING, logger="tollgate.reload"):
        assert reloader.reload()
    assert caplog.messages == [f"config reloaded, but {part} take effect only after a restart"]
    assert applied == [load_config(path)]  # the rest of the file is applied all the same


def test_the_readme_names_every_part_that_needs_a_restart() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    paragraph = readme[readme.index("Limits change without a restart.") :].split("\n\n")[0]
    for part in (*RESTART_ONLY, *(name for name in RELOADED if "." in name)):
        assert f"`{part}`" in paragraph or f"`[{part}]`" in paragraph, part
