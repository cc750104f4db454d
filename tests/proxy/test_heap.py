"""A started server's heap is frozen, so the collector's full walks skip it; a reload lets the old prices go."""

from __future__ import annotations

import gc
import weakref

from proxy.heap import settle_heap
from tests.conftest import Tollgate


class _Cycle:
    """Freed only by the collector: it refers to itself."""

    def __init__(self) -> None:
        self.me = self


def test_a_started_server_leaves_the_collector_little_to_walk(tollgate: Tollgate) -> None:
    # The price map alone is tens of thousands of objects; after the start they are frozen, out of every walk.
    assert gc.get_freeze_count() > 50_000
    assert len(gc.get_objects()) < gc.get_freeze_count() / 4


def test_settling_again_frees_what_was_dropped_since_the_last_freeze() -> None:
    kept = _Cycle()
    gone = weakref.ref(kept)
    settle_heap()  # frozen with it, as a price map is at start
    del kept  # dropped, as a reload drops the old price map
    gc.collect()
    assert gone() is not None  # frozen objects are never collected...
    settle_heap()
    assert gone() is None  # ... until the heap is settled again
