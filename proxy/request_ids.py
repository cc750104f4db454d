"""Request ids: a random prefix per process and a counter; unique across workers, and far cheaper than uuid4."""

from __future__ import annotations

import itertools
import os

_prefix = os.urandom(8).hex()
_counter = itertools.count(1)


def new_request_id() -> str:
    return f"{_prefix}{next(_counter):016x}"


def _new_prefix() -> None:
    """A forked child (gunicorn preload, multiprocessing) would repeat its parent's ids: it gets its own."""
    global _prefix, _counter
    _prefix = os.urandom(8).hex()
    _counter = itertools.count(1)


os.register_at_fork(after_in_child=_new_prefix)
