"""The README documents every setting, as the config defines them."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import documented_settings

README = (Path(__file__).parents[1] / "README.md").read_text()


@pytest.mark.parametrize(("name", "help"), documented_settings())
def test_setting_is_documented_in_the_readme(name: str, help: str) -> None:
    assert f"| `{name}` |" in README
