"""Threads for work that must not slow requests: database writes that no request waits for.

They run at the lowest CPU priority (nice 19; Linux sets a nice value per thread),
so that on a busy core the scheduler always runs the event loop first. The GIL
switch interval is short (see ``proxy.app``), so a waiting event loop also gets
the GIL back quickly.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

NICENESS = 19


def background_thread(name: str) -> ThreadPoolExecutor:
    """An executor of one thread named ``name``, at the lowest CPU priority."""
    return ThreadPoolExecutor(1, name, initializer=_lower_priority)


def _lower_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):  # elsewhere than Linux, the thread keeps its priority
        niceness = os.getpriority(os.PRIO_PROCESS, 0) + NICENESS
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
