"""A started server's heap is frozen, so the collector's full walks skip it; a reload lets the old prices go."""

from __future__ import annotations

import gc
import weakref

from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.heap import settle_heap
from tests.conftest import make_config
from tests.fakeprovider import FakeProvider


class _Cycle:
    """Freed only by the collector: it refers to itself."""

    def __init__(self) -> None:
        self.me = self


def test_a_server_that_owns_its_process_leaves_the_collector_little_to_walk(
    provider: FakeProvider, db_url: str
) -> None:
    gc.unfreeze()
    try:
        with TestClient(create_app(make_config(provider, db_url), owns_process=True)):
            # The price map alone is tens of thousands of objects; after the start they are frozen, out of every walk.
            assert gc.get_freeze_count() > 50_000
            assert len(gc.get_objects()) < gc.get_freeze_count() / 4
    finally:
        gc.unfreeze()  # for the tests that follow in this process


def test_an_embedded_app_leaves_the_heap_to_its_host(provider: FakeProvider, db_url: str) -> None:
    gc.unfreeze()
    with TestClient(create_app(make_config(provider, db_url))):
        assert gc.get_freeze_count() == 0


def test_settling_again_frees_what_was_dropped_since_the_last_freeze() -> None:
    kept = _Cycle()
    gone = weakref.ref(kept)
    settle_heap()  # frozen with it, as a price map is at start
    del kept  # dropped, as a reload drops the old price map
    gc.collect()
    assert gone() is not None  # frozen objects are never collected...
    settle_heap()
    assert gone() is None  # ... until the heap is settled again
    gc.unfreeze()
