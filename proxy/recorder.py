"""The recorder: usage records leave the request path here.

``submit`` only appends to a list. A background task collects records for up to
``flush_interval`` seconds (or until ``batch_size`` are waiting), writes them in
one transaction on a worker thread, then hands each to the usage handlers.
``close`` flushes everything still queued, so a clean shutdown loses nothing.

The same transaction adds each request's cost to the spend counters of the
limits it counts against (``proxy.ledger``) and claims the alerts that spend
crossed, so rows, counters and alerts never disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from pricing import pico_to_usd
from proxy.alerts import Alert
from proxy.ledger import Charge, Ledger
from proxy.limits import crossed_thresholds
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
        flush_interval: float = 0.2,
        handlers: Sequence[UsageHandler] = (),
        retry_interval: float = 1.0,
        ledger: Ledger | None = None,
        on_charged: Callable[[Sequence[Charge], dict[str, int]], None] | None = None,
        on_alert: Callable[[Alert], None] | None = None,
    ) -> None:
        self._store = store
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._retry_interval = retry_interval
        self._handlers = list(handlers)
        self._ledger = ledger
        self._on_charged = on_charged
        self._on_alert = on_alert
        self._claimed: set[tuple[str, int, Decimal]] = set()
        self._pending: list[tuple[UsageRecord, Sequence[Charge]]] = []
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.written = 0

    @property
    def queued(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tollgate-recorder")

    def submit(self, record: UsageRecord, charges: Sequence[Charge] = ()) -> None:
        """Queue ``record`` (and the spend it adds to limit counters) for writing. Never blocks or raises."""
        pending = self._pending
        pending.append((record, charges))
        if len(pending) == 1 or len(pending) >= self._batch_size:
            self._wake.set()

    async def close(self) -> None:
        """Stop the background task after writing everything queued."""
        self._closing = True
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()

    async def _run(self) -> None:
        while not self._closing:
            if not self._pending:
                await self._wake.wait()
                self._wake.clear()
            # Wait for a batch to fill even right after a write: writing each trickle at once would keep
            # the writer thread busy, and every hand-over of the GIL to it stalls the event loop.
            if len(self._pending) < self._batch_size and not self._closing:
                await self._pause(self._flush_interval)
            if not await self.flush():
                await self._pause(self._retry_interval)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the recorder is closing."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def flush(self) -> bool:
        """Write what is queued; False if the database refused (the records stay queued)."""
        async with self._flushing:  # one batch in flight at a time, or a batch could be written twice
            return await self._flush_queued()

    async def _flush_queued(self) -> bool:
        left = len(self._pending)  # what arrives meanwhile waits for the next round
        while left > 0:
            batch = self._pending[: min(self._batch_size, left)]
            left -= len(batch)
            started = time.perf_counter()
            try:
                spent, alerts = await asyncio.to_thread(self._write, batch)
            except Exception:
                logger.exception("writing %d usage records failed; keeping them queued", len(batch))
                self._wake.set()
                return False
            del self._pending[: len(batch)]
            self.written += len(batch)
            logger.debug("wrote %d usage records in %.1f ms", len(batch), (time.perf_counter() - started) * 1e3)
            charges = [c for _, cs in batch for c in cs]
            if charges and self._on_charged is not None:
                self._on_charged(charges, spent)
            if self._on_alert is not None:
                for alert in alerts:
                    self._on_alert(alert)
            if self._handlers:
                await self._call_handlers([record for record, _ in batch])
        return True

    def _write(self, batch: Sequence[tuple[UsageRecord, Sequence[Charge]]]) -> tuple[dict[str, int], list[Alert]]:
        """Runs on a worker thread: one transaction for the rows, their spend and the alerts it crosses."""
        charges = [c for _, cs in batch for c in cs]
        spent: dict[str, int] = {}
        alerts: list[Alert] = []

        def charge(conn: sa.Connection) -> None:
            assert self._ledger is not None
            spent.update(self._ledger.charge(conn, charges))
            alerts.extend(self._claim_alerts(conn, charges, spent))

        self._store.insert_records([r for r, _ in batch], charge if charges and self._ledger else None)
        return spent, alerts

    def _claim_alerts(self, conn: sa.Connection, charges: Sequence[Charge], spent: dict[str, int]) -> list[Alert]:
        assert self._ledger is not None
        alerts: list[Alert] = []
        now = datetime.now(UTC)
        counters = {c.counter_key: c.counter for c in charges}
        for key, counter in counters.items():
            for rule, threshold in crossed_thresholds(counter, spent.get(key, 0)):
                claim = (key, rule.max_pico, threshold)
                if claim in self._claimed:
                    continue
                self._claimed.add(claim)
                if self._ledger.claim_alert(conn, key, rule.max_pico, threshold, now):
                    alerts.append(
                        Alert(
                            scope=counter.scope,
                            scope_id=counter.scope_id,
                            window=counter.window,
                            window_label=counter.window_label,
                            spent_usd=pico_to_usd(spent[key]),
                            limit_usd=rule.max_usd,
                            threshold=threshold,
                            action=rule.action,
                            time=now,
                        )
                    )
        return alerts

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
