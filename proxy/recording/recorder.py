"""The recorder: usage records leave the request path here.

``submit`` only appends to a list. A background task collects records for up to
``flush_interval`` seconds (or until ``batch_size`` are waiting), writes them in
one transaction on a worker thread, then hands each to the usage handlers.
``close`` flushes everything still queued, so a clean shutdown loses nothing.

The same transaction adds each request's cost to the spend counters of the
limits it counts against (``proxy.limits.ledger``) and claims the alerts that spend
crossed, so rows, counters and alerts never disagree.

``submit`` may be called from any thread (the in-process meter calls it from the
app's threads); everything else runs on the event loop that started the recorder.
A lock keeps a record's journal line and its place in the queue together, so a
segment is never sealed between the two.

By default ``submit`` journals each record before it returns, so that a proxy that is
killed after its client got an answer still has the row. ``journal_on_submit=False``
(the in-process meter) leaves the journal's writes to the recorder's own loop: each
batch is journaled, in one write, when it is taken, before it goes to the database. The
app's thread then never writes a file; what a ``kill -9`` can lose is the records of the
last ``flush_interval``, and a clean exit loses nothing (``close`` writes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pricing import pico_to_usd
from proxy.clock import Clock, system_clock
from proxy.limits.alerts import Alert
from proxy.limits.ledger import Charge, Ledger
from proxy.limits.rules import crossed_thresholds
from proxy.recording.deferred import Deferred, apply_deferred
from proxy.recording.journal import Entry, Journal, read_segment
from proxy.recording.records import UsageRecord
from proxy.recording.store import Store
from proxy.threads import background_thread

logger = logging.getLogger("tollgate.recorder")

UsageHandler = Callable[[UsageRecord], Any]
# Batches are written by a background thread, which yields the CPU to requests. When that leaves it too
# little CPU and records back up past this many batches, a thread at normal priority takes over.
_BACKLOG_BATCHES = 4
_ORPHAN_CHECK_INTERVAL = 10.0  # seconds between looks for journals left by dead workers
_FILE_PROBLEM_REPEAT = 60.0  # seconds between repeats of the error that the SQLite file is lost


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
        on_dropped: Callable[[Sequence[Charge]], None] | None = None,
        on_alert: Callable[[Alert], None] | None = None,
        journal: Journal | None = None,
        max_queued: int = 50_000,
        on_batch: Callable[[int, float, bool], None] | None = None,
        clock: Clock = system_clock,
        journal_on_submit: bool = True,
    ) -> None:
        self._store = store
        self._clock = clock
        # Batches are written one at a time, off the event loop: by a thread that yields the CPU to requests,
        # or by one at normal priority while a backlog is caught up (see _BACKLOG_BATCHES).
        self._writer = background_thread("tollgate-recorder")
        self._catch_up = ThreadPoolExecutor(1, "tollgate-recorder-catch-up")
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._retry_interval = retry_interval
        self._handlers = list(handlers)
        self._ledger = ledger
        self._journal = journal
        self._on_batch = on_batch
        self._max_queued = max_queued
        self._sealed: list[Path] = []  # journal segments whose records the database may not have yet
        self._replay_needed = False
        self._orphans_checked = time.monotonic()
        self._file_problem_said = -_FILE_PROBLEM_REPEAT
        self._handler_queue: list[UsageRecord] = []
        self._handler_task: asyncio.Task[None] | None = None
        self._on_charged = on_charged
        self._on_dropped = on_dropped
        self._on_alert = on_alert
        self._claimed: set[tuple[str, int, Decimal]] = set()
        self._pending: list[Entry] = []
        self._journal_on_submit = journal_on_submit
        self._unjournaled: list[Entry] = []  # queued, and journaled when their batch is taken (journal_on_submit off)
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._closing = False
        self._database_ok = True  # the last write to the database worked
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()  # a record's journal line and its place in the queue, taken together
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.written = 0

    def add_handler(self, handler: UsageHandler) -> None:
        """Call ``handler`` with every record written from now on (from any thread)."""
        self._handlers.append(handler)

    @property
    def queued(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._task = self._loop.create_task(self._run(), name="tollgate-recorder")

    def submit(self, record: UsageRecord, charges: Sequence[Charge] = (), deferred: Deferred | None = None) -> bool:
        """Queue ``record`` (with the spend it adds to limit counters, and any usage it defers or completes)
        for writing. Never blocks or raises.

        Returns whether the record is safe on disk (in the journal). When it is not, the caller must
        ``await write_through()`` before its answer goes out.
        """
        entry = Entry(record, tuple(charges), deferred)
        pending = self._pending
        journal = self._journal
        with self._lock:
            if journal is None:
                journaled = True
            elif self._journal_on_submit:
                journaled = journal.append(record, charges, deferred)
            else:
                self._unjournaled.append(entry)
                journaled = True  # the batch that takes it journals it, before the database (see the docstring)
            pending.append(entry)
            queued = len(pending)
        if self._loop is None or threading.get_ident() == self._loop_thread:
            if queued == 1 or queued >= self._batch_size:
                self._wake.set()
        elif queued == 1:
            # From another thread, an asyncio event is set on its own loop only, which costs a write to its
            # self-pipe: done only when the queue was empty, the one time the recorder waits for this event.
            with contextlib.suppress(RuntimeError):  # that loop is closed: close() wrote what it could
                self._loop.call_soon_threadsafe(self._wake.set)
        return journaled

    async def write_through(self) -> bool:
        """Write what is queued now, because the journal could not take it; False if the database refused too."""
        written = await self.flush()
        if not written:
            logger.error(
                "a usage record could be written neither to the journal nor to the database; it is kept in memory "
                "and Tollgate refuses new requests until one of them works again"
            )
        return written

    @property
    def can_record(self) -> bool:
        """Whether a new request's record would reach the journal or the database (a request is refused if not)."""
        return self._journal is None or self._journal.failing is None or self._database_ok

    async def close(self) -> None:
        """Stop the background task after writing everything queued."""
        self._closing = True
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()
        if self._handler_task is not None:
            await self._handler_task
        if self._journal is not None:
            self._journal.close()
        self._writer.shutdown()
        self._catch_up.shutdown()

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
            elif time.monotonic() - self._orphans_checked > _ORPHAN_CHECK_INTERVAL:
                self._orphans_checked = time.monotonic()
                await self.replay_orphans()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the recorder is closing."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def flush(self) -> bool:
        """Write what is queued; False if the database refused (the records stay queued and journaled)."""
        async with self._flushing:  # one batch in flight at a time, or a batch could be written twice
            self._database_ok = await self._flush_queued()
            return self._database_ok

    async def _flush_queued(self) -> bool:
        with self._lock:
            left = len(self._pending)  # what arrives meanwhile waits for the next round
            if self._journal is not None and left:
                if self._unjournaled:
                    self._journal.append_entries(self._unjournaled)  # if it fails, the batch goes to the database
                    self._unjournaled = []
                self._sealed.append(self._journal.seal())
        while left > 0:
            batch = self._pending[: min(self._batch_size, left)]
            started = time.perf_counter()
            try:
                spent, alerts, charges = await self._write_or_set_aside(batch, self._sealed[-1:])
            except Exception as exc:
                if self._on_batch is not None:
                    self._on_batch(len(batch), time.perf_counter() - started, False)
                logger.error(
                    "writing %d usage records failed (%s: %s); they are kept in the journal and retried",
                    len(batch),
                    type(exc).__name__,
                    _first_line(exc),
                )
                self._trim_memory()
                return False
            left -= len(batch)
            del self._pending[: len(batch)]
            self.written += len(batch)
            elapsed = time.perf_counter() - started
            if self._on_batch is not None:
                self._on_batch(len(batch), elapsed, True)
            logger.debug("wrote %d usage records in %.1f ms", len(batch), elapsed * 1e3)
            self._after_write([entry.record for entry in batch], charges, spent, alerts)
        if self._sealed and not await self._replay_sealed():
            return False
        return True

    async def _write_or_set_aside(
        self, batch: Sequence[Entry], sealed: Sequence[Path]
    ) -> tuple[dict[str, int], list[Alert], list[Charge]]:
        """Write ``batch`` on the writer thread. If the database refuses its data (not a fault of the
        connection), write it one record at a time and set aside each record it still refuses, so that
        one bad row cannot hold back every row after it for ever."""
        loop = asyncio.get_running_loop()
        backlog = len(self._pending) > _BACKLOG_BATCHES * self._batch_size
        writer = self._catch_up if backlog else self._writer
        try:
            return await loop.run_in_executor(writer, self._write, batch, sealed)
        except (sa.exc.DataError, sa.exc.IntegrityError) as exc:
            logger.error(
                "the database refused a batch of %d usage records (%s); writing them one by one",
                len(batch),
                _first_line(exc),
            )
        spent: dict[str, int] = {}
        alerts: list[Alert] = []
        charges: list[Charge] = []
        for entry in batch:
            try:
                # The sealed segments were fsynced by the first try.
                one_spent, one_alerts, one_charges = await loop.run_in_executor(writer, self._write, [entry], ())
            except (sa.exc.DataError, sa.exc.IntegrityError) as exc:
                self._set_aside(entry, exc)
                continue
            spent.update(one_spent)
            alerts.extend(one_alerts)
            charges.extend(one_charges)
        return spent, alerts, charges

    def _set_aside(self, entry: Entry, error: Exception) -> None:
        record = entry.record
        if entry.charges and self._on_dropped is not None:
            self._on_dropped(entry.charges)  # its spend is not counted, so it must not stay held in a lease either
        where = self._journal.set_aside(entry) if self._journal is not None else None
        logger.error(
            "SET ASIDE: the database refuses usage record %s (%s); it is kept in %s, and its spend is not counted",
            record.request_id,
            _first_line(error),
            where or "this log only",
        )
        if where is None:
            logger.error("set-aside usage record: %r", record)

    def _trim_memory(self) -> None:
        """While the database is down, keep at most ``max_queued`` records in memory; the rest are in the journal."""
        excess = min(len(self._pending) - self._max_queued, len(self._pending) - len(self._unjournaled))
        if excess > 0 and self._journal is not None and not self._journal.full:
            del self._pending[:excess]
            self._replay_needed = True

    async def _replay_sealed(self) -> bool:
        """After a good round: replay what only the journal holds, then drop the sealed segments."""
        assert self._journal is not None
        if self._replay_needed:
            for segment in list(self._sealed):
                if not await self._replay(segment, own=True):
                    return False
            self._replay_needed = False
        if not self._database_file_lost():
            for segment in self._sealed:
                self._journal.discard(segment)
        # Kept segments stay on disk, for the next start to replay; this process is done with them.
        self._sealed.clear()
        return True

    def _database_file_lost(self) -> bool:
        """Whether the rows just written went to a SQLite file that is no longer the database's (said loudly)."""
        problem = self._store.file_problem()
        if problem is not None and time.monotonic() - self._file_problem_said > _FILE_PROBLEM_REPEAT:
            self._file_problem_said = time.monotonic()
            logger.error("DATABASE FILE LOST: %s Journal segments are kept from now on.", problem)
        return problem is not None

    async def replay_orphans(self) -> None:
        """Replay the journals of workers that died (``kill -9``) before their records reached the database."""
        if self._journal is None:
            return
        for segment in await asyncio.to_thread(self._journal.orphans):
            if self._database_file_lost():
                return  # replayed into a lost file, they would be lost again: the next start replays them
            if await self._replay(segment, own=False) and not self._database_file_lost():
                self._journal.discard(segment)
                self._journal.forget_holder(segment)

    async def _replay(self, segment: Path, *, own: bool) -> bool:
        batch = await asyncio.to_thread(lambda: list(read_segment(segment, own=own)))
        entries = batch
        replayed = 0
        for start in range(0, len(batch), self._batch_size):
            chunk = batch[start : start + self._batch_size]
            try:
                spent, alerts, charges = await self._write_or_set_aside(chunk, [])
            except Exception as exc:
                logger.error("replaying journal %s failed (%s); retrying later", segment.name, type(exc).__name__)
                return False
            replayed += len(chunk)
            self._after_write([entry.record for entry in chunk], charges, spent, alerts)
        if entries:
            logger.warning("replayed %d journaled usage records from %s", replayed, segment.name)
        return True

    def _after_write(
        self, records: Sequence[UsageRecord], charges: Sequence[Charge], spent: dict[str, int], alerts: Sequence[Alert]
    ) -> None:
        if charges and self._on_charged is not None:
            self._on_charged(charges, spent)
        if self._on_alert is not None:
            for alert in alerts:
                self._on_alert(alert)
        if self._handlers and records:
            self._handler_queue.extend(records)
            if self._handler_task is None or self._handler_task.done():
                self._handler_task = asyncio.get_running_loop().create_task(self._drain_handlers())

    async def _drain_handlers(self) -> None:
        while self._handler_queue:
            records, self._handler_queue = self._handler_queue, []
            await self._call_handlers(records)

    def _write(
        self, batch: Sequence[Entry], sealed: Sequence[Path]
    ) -> tuple[dict[str, int], list[Alert], list[Charge]]:
        """Runs on a worker thread: one transaction for the rows, their rollups, their spend and its alerts.

        Only rows new to the database are charged, so a replayed record never counts twice.
        """
        for segment in sealed:
            _fsync(segment)
        spent: dict[str, int] = {}
        alerts: list[Alert] = []
        charged: list[Charge] = []

        def after_insert(conn: sa.Connection, inserted: set[str]) -> None:
            charged.extend(c for entry in batch if entry.record.request_id in inserted for c in entry.charges)
            if charged and self._ledger is not None:
                spent.update(self._ledger.charge(conn, charged))
                alerts.extend(self._claim_alerts(conn, charged, spent))
            # Deferred usage moves with its request's row: written once, as the row is.
            deferred = [e.deferred for e in batch if e.deferred is not None and e.record.request_id in inserted]
            if deferred:
                apply_deferred(conn, self._store.dialect, deferred)

        try:
            self._store.insert_records([entry.record for entry in batch], after_insert)
        except BaseException:
            if self._ledger is not None:
                self._ledger.committed(False)
            raise
        if self._ledger is not None:
            self._ledger.committed(True)
        return spent, alerts, charged

    def _claim_alerts(self, conn: sa.Connection, charges: Sequence[Charge], spent: dict[str, int]) -> list[Alert]:
        assert self._ledger is not None
        alerts: list[Alert] = []
        now = self._clock()
        counters = {c.counter_key: c.counter for c in charges if c.counter is not None}
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
                            window_start=counter.start,
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


def _first_line(error: Exception) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _call_each(handler: UsageHandler, batch: Sequence[UsageRecord]) -> None:
    for record in batch:
        try:
            handler(record)
        except Exception:
            logger.exception("usage handler %s failed on request %s", _name(handler), record.request_id)


def _name(handler: UsageHandler) -> str:
    return f"{getattr(handler, '__module__', '?')}:{getattr(handler, '__qualname__', repr(handler))}"
