"""Tollgate served for real on loopback, for SDKs that bring their own HTTP client (anthropic, google-genai).

The fake provider speaks each API's wire format; ``provider_kinds`` adds one ``[[providers]]`` entry
per kind, all pointing at it, so the row's provider says which kind a request was routed to.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from proxy.app import create_app
from proxy.config import Config
from proxy.recording.store import Store
from proxy.recording.tables import USAGE_TABLE
from tests.conftest import make_config
from tests.fakeprovider import FakeProvider, ServerThread


def provider_kinds(provider: FakeProvider, **extra: str) -> str:
    """A ``[[providers]]`` entry for Anthropic, Gemini and Azure, each at the fake provider's root."""
    root = f"http://{provider.host}:{provider.port}"
    entry = '\n[[providers]]\nname = "fake-{0}"\nkind = "{0}"\nbase_url = "{1}"\nretries = 1\n{2}\n'
    return "".join(entry.format(kind, root, extra.get(kind, "")) for kind in ("anthropic", "gemini", "azure"))


class LiveTollgate:
    """Tollgate under uvicorn on a loopback port, and what it recorded."""

    def __init__(self, config: Config, server: ServerThread) -> None:
        self.config = config
        self.url = f"http://127.0.0.1:{server.port}"
        self.store = Store(config.database.url)

    def rows(self, expected: int = 1) -> list[dict[str, Any]]:
        """Every recorded row, once at least ``expected`` are written (or five seconds have passed)."""
        deadline = time.monotonic() + 5
        while True:
            with self.store.engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(USAGE_TABLE.select().order_by(USAGE_TABLE.c.started_at))]
            if len(rows) >= expected or time.monotonic() > deadline:
                time.sleep(0.05)  # and no more come
                with self.store.engine.connect() as conn:
                    query = USAGE_TABLE.select().order_by(USAGE_TABLE.c.started_at)
                    return [dict(r._mapping) for r in conn.execute(query)]
            time.sleep(0.01)


@pytest.fixture
def live_tollgate_factory(provider: FakeProvider, db_url: str) -> Iterator[Any]:
    servers: list[ServerThread] = []

    def open_tollgate(extra: str = "", kinds: dict[str, str] | None = None) -> LiveTollgate:
        config = make_config(provider, db_url, extra, provider_kinds(provider, **(kinds or {})))
        server = ServerThread(create_app(config))
        server.__enter__()
        servers.append(server)
        return LiveTollgate(config, server)

    yield open_tollgate
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def live(live_tollgate_factory: Any) -> LiveTollgate:
    tollgate: LiveTollgate = live_tollgate_factory()
    return tollgate
