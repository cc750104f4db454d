"""Price files for `tollgate prices import`: a litellm map, or a sheet in JSON, TOML or CSV."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from pricing import PriceFileError, read_price_file
from pricing.sheets import sheet_rates_from_json


def test_a_litellm_map_is_read_as_a_map(tmp_path: Path) -> None:
    path = tmp_path / "map.json"
    path.write_text('{"sample_spec": {"input_cost_per_token": 0}, "gpt-4o": {"input_cost_per_token": 3e-06}}')
    read = read_price_file(path)
    assert read.kind == "map" and dict(read.entries) == {"gpt-4o": {"input_cost_per_token": 3e-06}}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("sheet.json", '{"gpt-4o": {"input": 2.5, "cached_input": "1.25"}}'),
        ("sheet.toml", '["gpt-4o"]\ninput = 2.5\ncached_input = "1.25"\n'),
        ("sheet.csv", "model,input,cached_input,output\ngpt-4o,2.5,1.25,\n"),
    ],
)
def test_a_sheet_gives_exact_rates_per_token(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    read = read_price_file(path)
    assert read.kind == "sheet"
    assert dict(read.entries["gpt-4o"]) == {
        "input_cost_per_token": Decimal("0.0000025"),
        "cache_read_input_token_cost": Decimal("0.00000125"),
    }


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.json", '{"gpt-4o": {"inptu": 2}}', "model 'gpt-4o': unknown key 'inptu'; valid keys are input, output"),
        ("b.json", '{"gpt-4o": {"input": -1}}', "model 'gpt-4o': input must be a non-negative price"),
        ("c.json", "[1]", "expected a JSON object"),
        ("d.json", "{", "not valid JSON"),
        ("e.toml", "[x", "not valid TOML"),
        ("f.csv", "name,input\nx,1\n", "needs a 'model' column"),
        ("g.csv", "model,input\n,1\n", "line 2 has no model"),
        ("h.json", '{"gpt-4o": 3}', "model 'gpt-4o': expected a table"),
        ("i.toml", "", "names no model"),
        ("j.csv", "model,input\ngpt-4o,\n", "model 'gpt-4o': expected a table"),
    ],
)
def test_a_bad_file_is_refused_naming_file_model_and_key(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PriceFileError) as raised:
        read_price_file(path)
    assert str(raised.value).startswith(f"{path}: ") and message in str(raised.value)


def test_stored_sheet_rates_read_back_as_decimals() -> None:
    assert sheet_rates_from_json({"m": {"input_cost_per_token": "0.0000025"}}) == {
        "m": {"input_cost_per_token": Decimal("0.0000025")}
    }
