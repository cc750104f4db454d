"""A start that fails half-way stops what it had started: no thread, task or lock outlives it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.forward import Upstream
from tests.conftest import make_config
from tests.fakeprovider import FakeProvider


class _NoUpstream(Exception):
    pass


def _failing_upstream() -> Upstream:
    raise _NoUpstream("the upstream client could not be made")


def _tollgate_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("tollgate")]


def test_a_failed_start_stops_the_services_it_started(provider: FakeProvider, db_url: str) -> None:
    before = _tollgate_threads()
    app = create_app(make_config(provider, db_url), upstream_factory=_failing_upstream)
    with pytest.raises(_NoUpstream), TestClient(app):
        pass
    deadline = time.monotonic() + 5
    while _tollgate_threads() != before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _tollgate_threads() == before  # the recorder's and the budget's threads were stopped
    journal = Path(db_url.removeprefix("sqlite:///")).parent / "journal"
    assert list(journal.glob("*.lock")) == []  # the journal was closed, its lock given up


def test_a_clean_start_and_stop_leave_nothing_behind(provider: FakeProvider, db_url: str) -> None:
    before = _tollgate_threads()
    with TestClient(create_app(make_config(provider, db_url))) as client:
        assert client.get("/readyz").status_code == 200
    deadline = time.monotonic() + 5
    while _tollgate_threads() != before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _tollgate_threads() == before
