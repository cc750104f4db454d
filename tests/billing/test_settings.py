"""The [billing] settings: validated once, in one definition that the config file's section uses."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from proxy.billing.customers import CustomerBook, ModelPrice
from proxy.billing.settings import BillingSettings, settings_from_config
from proxy.config import ConfigError, documented_settings, parse_config


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"entity": "org"}, "entity"),
        ({"rounding": "ROUND_SOMETIMES"}, "rounding"),
        ({"generate_day": 31}, "generate_day"),
        ({"markup_percent": Decimal(-1)}, "markup_percent"),
        ({"decimals": 13}, "decimals"),
    ],
)
def test_bad_billing_settings_name_the_key(changes: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=rf"\[billing\] {key} must be"):
        BillingSettings(**changes)


def test_settings_from_config_defaults_without_a_billing_section() -> None:
    assert settings_from_config(object()) == BillingSettings()
    billing = SimpleNamespace(entity="team", markup_percent=5.5, decimals=3)
    assert settings_from_config(SimpleNamespace(billing=billing)) == BillingSettings(
        entity="team", markup_percent=Decimal("5.5"), decimals=3
    )


def test_the_config_file_billing_section_is_billing_settings() -> None:
    config = parse_config('[billing]\nentity = "team"\nmarkup_percent = 2.5\n', "tollgate.toml")
    assert config.billing == BillingSettings(entity="team", markup_percent=Decimal("2.5"))
    assert settings_from_config(config) is config.billing


def test_a_bad_billing_value_in_the_config_file_names_the_file_and_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^tollgate\.toml: \[billing\] decimals must be an integer from 0 to 12"):
        parse_config("[billing]\ndecimals = 13\n", "tollgate.toml")


def test_every_billing_setting_is_documented_with_its_help() -> None:
    documented = dict(documented_settings())
    fields = {name: f for name, f in BillingSettings.model_fields.items() if name != "customers"}
    customers = "billing.customers.<id>."
    flat = {name for name in documented if name.startswith("billing.") and not name.startswith(customers)}
    assert flat == {f"billing.{name}" for name in fields}
    assert all(documented[f"billing.{name}"] == field.description for name, field in fields.items())
    books = {name.removeprefix(customers) for name in documented if name.startswith(customers)}
    own = {f"models.<id>.{name}" for name in ModelPrice.model_fields}
    assert books == {name for name in CustomerBook.model_fields if name != "models"} | own
