from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from proxy.config import Config, ConfigError, documented_settings, load_config, parse_config


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
            r"conf.toml: unknown key .server.prot.; valid keys: access_log, cost_header, host, max_body_bytes",
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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[providers]]\nname = "a"\nbase_url = "http://x"\nmodel = ["m"]\n',
            r"^conf.toml: unknown key 'providers\[0\].model'; valid keys: api_key_env, base_url, bound_models, ",
        ),
        (
            '[teams.research]\nmembers = "alice"\n',
            r"^conf.toml: teams.research.members = 'alice' must be a list of strings$",
        ),
        (
            '[[limits]]\nmax_usd = 1\n[[limits]]\nmax_usd = 1\nwindow = "hour"\n',
            r"^conf.toml: limits\[1\].window = 'hour' must be one of day, week, month, total$",
        ),
        ("source = 'elsewhere.toml'\n", r"^conf.toml: unknown key 'source'; valid keys: alerts, .*, usage_handlers$"),
        ("[pricing]\nmodel = {}\n", r"^conf.toml: unknown key 'pricing.model'; valid keys: models, tools$"),
        ('[pricing.models]\n"m" = 1\n', r'^conf.toml: \[pricing.models."<name>"\] must be tables of prices$'),
        ("providers = 1\n", r"^conf.toml: providers must be an array of tables, written \[\[providers\]\]$"),
        (
            '[[providers]]\nname = "a"\nbase_url = "http://x"\nheaders = {a = 1}\n',
            r"headers = \{'a': 1\} must be a table",
        ),
        ("[billing]\ndecimals = 13\n", r"^conf.toml: \[billing\] decimals must be an integer from 0 to 12, not 13$"),
    ],
)
def test_an_error_names_the_file_the_dotted_key_the_value_and_why(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "conf.toml")


def test_every_problem_of_a_file_is_named_in_one_error() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config('[server]\nport = "80"\nworkers = 0\n[auth]\nmode = "open"\n', "conf.toml")
    assert str(raised.value).splitlines() == [
        "conf.toml: server.port = '80' must be an integer",
        "conf.toml: server.workers = 0 must be positive",
        "conf.toml: auth.mode = 'open' must be one of passthrough, managed",
    ]


def test_a_toml_float_becomes_the_decimal_it_was_written_as() -> None:
    config = parse_config("[[limits]]\nmax_usd = 0.1\nalert_at = [0.7, 1]\n[billing]\nexchange_rate = 1.1\n")
    assert config.limits[0].max_usd == Decimal("0.1") and config.limits[0].alert_at == (Decimal("0.7"), Decimal(1))
    assert config.billing.exchange_rate == Decimal("1.1")


def test_an_integer_is_a_float_but_a_bool_is_never_a_number() -> None:
    assert parse_config("[recorder]\nflush_interval = 1\n").recorder.flush_interval == 1.0
    with pytest.raises(ConfigError, match=r"server.port = True must be an integer"):
        parse_config("[server]\nport = true\n")
    with pytest.raises(ConfigError, match=r"limits\[0\].max_usd = True must be a number or a decimal string"):
        parse_config("[[limits]]\nmax_usd = true\n")


def test_a_loaded_config_is_frozen_and_knows_its_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[teams.research]\nmembers = ["alice"]\n[pricing.models."m"]\ninput = 1\n')
    config = load_config(path, environ={})
    assert config.source == str(path)
    with pytest.raises(ValidationError, match="frozen"):
        config.server.port = 1
    with pytest.raises(TypeError):
        config.teams["sales"] = config.teams["research"]  # type: ignore[index]
    with pytest.raises(TypeError):
        config.pricing_models["m"] = {}  # type: ignore[index]


def test_every_setting_has_a_default_and_a_one_line_help() -> None:
    assert Config().source == "<defaults>"  # every default together is a valid config
    for name, help in documented_settings():
        assert help and "\n" not in help, name
