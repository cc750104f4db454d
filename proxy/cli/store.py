"""The usage store as the read-only commands open it: never creating an empty database."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.recording.store import Store


def recorded_store(url: str) -> Store | None:
    """The store a read-only command reads; None, said on stderr, when its SQLite file does not exist.

    Opening it would create an empty database there, and the command would report an empty
    table as if nothing had been recorded anywhere.
    """
    from proxy.recording.sqlite import sqlite_file
    from proxy.recording.store import Store

    path = sqlite_file(url)
    if path is not None and not path.exists():
        sys.stderr.write(f"tollgate: no database at {path} yet: nothing has been recorded there\n")
        return None
    store = Store(url)
    store.create_tables()
    return store
