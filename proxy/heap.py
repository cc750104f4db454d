"""What a server makes at start lives as long as it does: kept out of the garbage collector's walks.

The price map, the tokenizer, the config and the modules are some 140,000 objects the collector
tracks. CPython's full collection walks every one, and on this heap each took about 50 ms: a
request that arrived during it waited that long, which set the p99 latency at one connection.
``settle_heap`` collects once and freezes what is left (``gc.freeze``), so later collections
walk only what requests make. Only an app that owns its process does this (``tollgate serve``:
``create_app(..., owns_process=True)``).

A reload makes a new price map and drops the old one, which frozen would never be freed:
``settle_heap`` unfreezes first, so the old one is collected before the heap is frozen again.
"""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Collect, then freeze every object still alive, so that full collections stop walking them."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
