from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import ConfigError, load_config, parse_config


def test_example_config_file_is_valid() -> None:
    folder = Path(__file__).parents[2]
    config = load_config(folder / "config.toml", environ={})
    assert config.providers[0].name == "openai"
    assert config.database.url == f"sqlite:///{folder / 'tollgate.db'}"  # ./tollgate.db, beside the file


def test_database_url_from_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[database]\nurl = "sqlite:///a.db"\n')
    config = load_config(path, environ={"TOLLGATE_DATABASE_URL": "postgresql://db/x"})
    assert config.database.url == "postgresql://db/x"


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text("[server]\nport = 9999\n")
    assert load_config(environ={"TOLLGATE_CONFIG": str(path)}).server.port == 9999


def test_missing_named_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml: config file not found"):
        load_config(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[server]\nprot = 1\n",
            r"conf.toml: unknown key .server.prot.; valid keys: cost_header, host, max_body_bytes, metrics_user_labels",
        ),
        ('[server]\nport = "80"\n', r"conf.toml: server.port = '80' must be an integer"),
        ('[auth]\nmode = "open"\n', r"conf.toml: auth.mode = 'open' must be one of passthrough, managed"),
        ('[[providers]]\nname = "a"\nbase_url = "api.openai.com"\n', r"providers\[0\].base_url = 'api.openai.com'"),
        ('[[keys]]\nname = "k"\nsha256 = "abc"\n', r"keys\[0\].sha256 = 'abc' must be 64 hex digits"),
        ("[server\n", r"conf.toml: not valid TOML"),
        ("surprise = 1\n", r"unknown key 'surprise'"),
        (
            '[[providers]]\nname = "a"\nbase_url = "http://x"\nmodels = "gpt-*"\n',
            r"providers\[0\].models .* list of strings",
        ),
    ],
)
def test_bad_config_is_refused_naming_file_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "conf.toml")
