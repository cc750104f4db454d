"""The recorder: usage records leave the request path here.

``submit`` only appends to a list. A background task collects records for up to
``flush_interval`` seconds (or until ``batch_size`` are waiting), writes them in
one transaction on a worker thread, then hands each to the usage handlers.
``close`` flushes everything still queued, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from proxy.records import UsageRecord
from proxy.store import Store

logger = logging.getLogger("tollgate.recorder")

UsageHandler = Callable[[UsageRecord], Any]


def load_handlers(specs: Sequence[str]) -> list[UsageHandler]:
    """Import each ``"pkg.module:function"``; a bad spec is a config error, raised at start."""
    handlers: list[UsageHandler] = []
    for spec in specs:
        module_name, _, attr = spec.partition(":")
        if not module_name or not attr:
            raise ValueError(f"usage_handlers: {spec!r} is not of the form 'pkg.module:function'")
        try:
            handler = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"usage_handlers: cannot load {spec!r}: {exc}") from None
        if not callable(handler):
            raise ValueError(f"usage_handlers: {spec!r} is not callable")
        handlers.append(handler)
    return handlers


class Recorder:
    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.05,
        handlers: Sequence[UsageHandler] = (),
        retry_interval: float = 1.0,
    ) -> None:
        self._store = store
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._retry_interval = retry_interval
        self._handlers = list(handlers)
        self._pending: list[UsageRecord] = []
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.written = 0

    @property
    def queued(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tollgate-recorder")

    def submit(self, record: UsageRecord) -> None:
        """Queue ``record`` for writing. Never blocks and never raises."""
        pending = self._pending
        pending.append(record)
        if len(pending) == 1 or len(pending) >= self._batch_size:
            self._wake.set()

    async def close(self) -> None:
        """Stop the background task after writing everything queued."""
        self._closing = True
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        await self._flush()

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            if len(self._pending) < self._batch_size and not self._closing:
                await self._pause(self._flush_interval)
            if not await self._flush():
                await self._pause(self._retry_interval)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the recorder is closing."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _flush(self) -> bool:
        """Write what is queued; False if the database refused (the records stay queued)."""
        while self._pending:
            batch = self._pending[: self._batch_size]
            started = time.perf_counter()
            try:
                await asyncio.to_thread(self._store.insert_records, batch)
            except Exception:
                logger.exception("writing %d usage records failed; keeping them queued", len(batch))
                self._wake.set()
                return False
            del self._pending[: len(batch)]
            self.written += len(batch)
            logger.debug("wrote %d usage records in %.1f ms", len(batch), (time.perf_counter() - started) * 1e3)
            if self._handlers:
                await self._call_handlers(batch)
        return True

    async def _call_handlers(self, batch: Sequence[UsageRecord]) -> None:
        for handler in self._handlers:
            if inspect.iscoroutinefunction(handler):
                for record in batch:
                    try:
                        await handler(record)
                    except Exception:
                        logger.exception("usage handler %s failed on request %s", _name(handler), record.request_id)
            else:
                # A slow synchronous handler must not stall the event loop that serves requests.
                await asyncio.to_thread(_call_each, handler, batch)


def _call_each(handler: UsageHandler, batch: Sequence[UsageRecord]) -> None:
    for record in batch:
        try:
            handler(record)
        except Exception:
            logger.exception("usage handler %s failed on request %s", _name(handler), record.request_id)


def _name(handler: UsageHandler) -> str:
    return f"{getattr(handler, '__module__', '?')}:{getattr(handler, '__qualname__', repr(handler))}"
