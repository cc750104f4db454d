"""The give-back a lease sync is writing, which a refused lease extension waits for.

A sync takes idle budget (or rate room) out of this worker's local leases at once, then
writes the give-back to the database on its own thread. Until that commits, the
database still counts the amount as this worker's lease, so an extension asked for
meanwhile can be refused for room that is free. The keepers (``proxy.limits.budget``,
``proxy.limits.rate_keeper``) ask once more after the give-back is written.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any

import sqlalchemy as sa


class GiveBacks:
    def __init__(self) -> None:
        self._keys: frozenset[str] = frozenset()
        self._written: asyncio.Future[None] | None = None

    async def write(
        self, executor: Executor, write: Callable[..., None], returns: Mapping[str, int], *args: Any
    ) -> None:
        """Run ``write(returns, *args)`` on ``executor``; meanwhile, ``returns`` counts as being given back."""
        written = asyncio.get_running_loop().run_in_executor(executor, write, returns, *args)
        self._keys, self._written = frozenset(returns), written
        try:
            await written
        finally:
            self._keys, self._written = frozenset(), None

    async def wait_for(self, key: str) -> bool:
        """Whether a give-back on ``key`` was being written; if so, it is written (or failed) on return."""
        written = self._written
        if written is None or key not in self._keys:
            return False
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            await asyncio.shield(written)
        return True
