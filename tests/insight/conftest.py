"""Every store a test of this package opened is disposed when it ends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.insight.history import OPENED


@pytest.fixture(autouse=True)
def _dispose_stores() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().dispose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
