from __future__ import annotations

import importlib.metadata

import pytest

from pricing import Catalog
from pricing.catalog import _package_version


def test_describe_shows_name_resolution_source_and_rates(catalog: Catalog) -> None:
    text = catalog.describe("openai/gpt-4o-mini")

    lines = text.splitlines()
    assert lines[:3] == [
        "model      openai/gpt-4o-mini",
        "resolved   gpt-4o-mini",
        f"source     litellm bundled map (litellm {importlib.metadata.version('litellm')})",
    ]
    assert "  input                    $0.15 / 1M tokens" in lines
    assert "  cached_input (priority)  $0.125 / 1M tokens" in lines


def test_describe_lists_limits_and_mode(catalog: Catalog) -> None:
    lines = catalog.describe("gpt-4o-mini").splitlines()

    assert "mode       chat" in lines
    assert any(line.startswith("max input  ") and line.endswith(" tokens") for line in lines)
    assert any(line.startswith("max output ") for line in lines)


def test_describe_orders_rates_by_kind() -> None:
    entry = {"output_cost_per_token": 2e-6, "cache_read_input_token_cost": 1e-7, "input_cost_per_token": 1e-6}
    catalog = Catalog.from_entries({"m": entry})

    rates = catalog.describe("m").splitlines()[-3:]

    assert [line.split()[0] for line in rates] == ["input", "output", "cached_input"]


def test_describe_names_a_config_override() -> None:
    catalog = Catalog.load({"gpt-4o-mini": {"input": "0.1"}})

    text = catalog.describe("gpt-4o-mini")

    assert "source     config.toml override of the litellm bundled map (litellm " in text
    assert "  input " in text and "$0.10 / 1M tokens" in text


def test_describe_names_a_custom_model() -> None:
    catalog = Catalog.from_entries({}, {"acme": {"output": 2}})

    assert catalog.describe("acme").splitlines()[2:] == [
        "source     config.toml custom model",
        "rates      USD per 1M tokens",
        "  output  $2.00 / 1M tokens",
    ]


def test_describe_says_an_unknown_model_is_unpriced(catalog: Catalog) -> None:
    text = catalog.describe("no-such-model")

    assert text.startswith("model      no-such-model\nunknown: ")
    assert "recorded as unpriced" in text


def test_describe_a_model_without_rates() -> None:
    catalog = Catalog.from_entries({"m": {"mode": "image_generation"}})

    assert catalog.describe("m").splitlines()[2:] == [
        "source     explicit entries",
        "mode       image_generation",
        "rates      none",
    ]


@pytest.mark.parametrize(
    ("rate", "shown"),
    [
        (1.5e-7, "$0.15"),
        (7.5e-8, "$0.075"),
        (1e-5, "$10.00"),
        (1.875e-6, "$1.875"),
        (0, "$0.00"),
        (2.99999e-06, "$2.99999"),
        (1.5e-4, "$150.00"),
    ],
)
def test_describe_shows_rates_per_million_tokens(rate: float, shown: str) -> None:
    catalog = Catalog.from_entries({"m": {"input_cost_per_token": rate}})

    assert catalog.describe("m").splitlines()[-1] == f"  input  {shown} / 1M tokens"


def test_unlisted_rate_keys_are_shown_by_their_litellm_name() -> None:
    catalog = Catalog.from_entries({"m": {"input_dbu_cost_per_token": 4e-6}})

    assert catalog.describe("m").splitlines()[-1] == "  input_dbu_cost_per_token  $4.00 / 1M tokens"


def test_package_version_of_a_missing_distribution() -> None:
    assert _package_version("tollgate-no-such-distribution") == "version unknown"
