from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pricing import Catalog
from pricing.catalog import MAP_FILENAME, bundled_map_path

_LOAD_IN_A_FRESH_PROCESS = """
import sys, time
started = time.perf_counter()
from pricing import Catalog
catalog = Catalog.load()
assert catalog.lookup("gpt-4o-mini") is not None
print(time.perf_counter() - started)
print("litellm" in sys.modules)
"""


def test_load_is_fast_and_never_imports_litellm() -> None:
    run = subprocess.run([sys.executable, "-c", _LOAD_IN_A_FRESH_PROCESS], capture_output=True, text=True, check=True)

    seconds, imported = run.stdout.split()
    assert imported == "False"
    assert float(seconds) < 1.0


def test_bundled_map_is_found_in_the_litellm_package() -> None:
    path = bundled_map_path()

    assert path.name == MAP_FILENAME
    assert path.parent.name == "litellm"


@pytest.mark.parametrize("package", ["tollgate_no_such_package", "decimal"])
def test_missing_price_map_is_a_clear_error(package: str) -> None:
    with pytest.raises(FileNotFoundError, match=f"no {MAP_FILENAME} found in an installed '{package}' package"):
        bundled_map_path(package)


def test_load_from_an_explicit_path(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"m": {"input_cost_per_token": 1e-6}}))

    catalog = Catalog.load(path=path)

    assert catalog.lookup("m") is not None
    assert catalog.describe("m").splitlines()[2] == f"source     price map {path}"


def test_a_price_map_that_is_not_an_object_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text("[1, 2]")

    with pytest.raises(ValueError, match="expected a JSON object"):
        Catalog.load(path=path)
