from __future__ import annotations

import pytest

from pricing import Catalog


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The real catalog: litellm's bundled map, no overrides."""
    return Catalog.load()
