"""The meter's services: the proxy's store, ledger, budget, journal and recorder, on a thread of their own.

The app's threads and event loops run the request path (``proxy.inprocess.transport``);
what outlives a call runs on one event loop in a daemon thread, ``tollgate-meter``: the
recorder's batches and their journal, lease renewals and extensions, alerts and usage
handlers. Nothing on that loop is on the app's path, except a lease extension, which a
call waits for as it would in the proxy.

They are put together as ``proxy.app`` puts them together for the proxy, from the same
config sections, so rows, limits and journals are shared with proxy instances that use
the same ``[database]`` and ``[recorder] journal_dir``. Two differences: an unreachable
database does not stop the meter from starting (records wait in the journal, and the
schema is brought up to date once the database answers), and the price map is read on
the first priced call unless asked for at once (``LazyCatalog``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from pricing import Catalog, PriceCard, PriceVersion
from proxy.admin.metrics import Metrics
from proxy.clock import Clock
from proxy.config import Config
from proxy.core import Metering
from proxy.hooks import load_hooks
from proxy.limits.alerts import AlertDispatcher, load_alert_handlers
from proxy.limits.budget import BudgetKeeper
from proxy.limits.ledger import Ledger
from proxy.limits.rate_keeper import RateKeeper
from proxy.limits.rate_ledger import RateLedger
from proxy.limits.runtime import RuntimeLimits, RuntimeLimitWatcher
from proxy.recording.journal import Journal
from proxy.recording.migrations import UpgradeRefused
from proxy.recording.recorder import Recorder, UsageHandler
from proxy.recording.store import Store

logger = logging.getLogger("tollgate.inprocess")

T = TypeVar("T")
_PREPARE_RETRY_S = 5.0  # seconds between tries to bring an unreachable database's schema up to date
_CLOSE_TIMEOUT_S = 30.0


def _price_versions(store: Store) -> list[PriceVersion]:
    """The imported price versions; none (the config's prices) while the database cannot be read."""
    from proxy.recording.prices import load_versions

    try:
        return load_versions(store)
    except sa.exc.SQLAlchemyError as exc:
        logger.warning("price versions not read (%s): the config's prices price rows until a restart", exc)
        return []


class LazyCatalog(Catalog):
    """The price catalog, read from the price map on its first look-up (about 0.1 s), not at start.

    The overrides are checked at once, so a bad ``[pricing]`` table still fails the start.
    """

    def __init__(self, overrides: Mapping[str, Mapping[str, object]]) -> None:
        Catalog.from_entries({}, overrides)  # checks them; raises PricingConfigError naming model and key
        self._pending_overrides = overrides
        self._loading = threading.Lock()
        self._loaded: Catalog | None = None

    def lookup(self, model: str) -> PriceCard | None:
        return self.loaded().lookup(model)

    def describe(self, model: str) -> str:
        return self.loaded().describe(model)

    def __contains__(self, name: object) -> bool:
        return name in self.loaded()

    def candidates(self, model: str) -> Iterator[str]:
        return self.loaded().candidates(model)

    def loaded(self) -> Catalog:
        """The catalog itself, read now if it was not yet."""
        loaded = self._loaded
        if loaded is None:
            with self._loading:
                loaded = self._loaded
                if loaded is None:
                    loaded = self._loaded = Catalog.load(self._pending_overrides)
        return loaded


class Runtime:
    """The started services of one meter in one process (a forked child starts its own)."""

    def __init__(
        self,
        config: Config,
        catalog: Catalog,
        handlers: Sequence[UsageHandler],
        clock: Clock,
    ) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self._stack = contextlib.AsyncExitStack()
        self._thread = threading.Thread(target=self._serve, name="tollgate-meter", daemon=True)
        self._thread.start()
        self._closed = False
        try:
            self.metering: Metering = self.call(self._open(config, catalog, list(handlers), clock))
        except BaseException:
            self._stop_loop()
            raise

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the meter's loop and wait for its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _open(self, config: Config, catalog: Catalog, handlers: list[UsageHandler], clock: Clock) -> Metering:
        started = self._stack
        store = self.store = Store(config.database.url)
        started.callback(store.dispose)
        await self._prepare(store)
        ledger = Ledger(store, holder=f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(4)}")
        alerts = AlertDispatcher(config.alerts.webhook_url, load_alert_handlers(config.alerts.alert_handlers))
        alerts.start()
        started.push_async_callback(alerts.close)
        budget = BudgetKeeper(ledger, config.budget, clock=lambda: clock().timestamp())
        metrics = Metrics(user_labels=config.server.metrics_user_labels)
        self.journal = Journal(Path(config.recorder.journal_dir), config.recorder.journal_max_bytes)
        recorder = self.recorder = Recorder(
            store,
            journal=self.journal,
            on_batch=lambda rows, seconds, ok: metrics.observe_batch(rows=rows, seconds=seconds, ok=ok),
            batch_size=config.recorder.batch_size,
            flush_interval=config.recorder.flush_interval,
            handlers=[*load_hooks(config.usage_handlers, "usage_handlers"), *handlers],
            ledger=ledger,
            on_charged=budget.written,
            on_dropped=budget.dropped,
            on_alert=alerts.emit,
            clock=clock,
            journal_on_submit=False,  # the app's threads never write the journal: each batch is journaled whole
        )
        budget.start()
        started.push_async_callback(budget.close)
        rate_keeper = RateKeeper(RateLedger(store, ledger.holder), config.budget, clock=lambda: clock().timestamp())
        rate_keeper.start()
        started.push_async_callback(rate_keeper.close)
        recorder.start()
        started.push_async_callback(recorder.close)  # before the budget's: its last batches settle leases
        metrics.set_queue_depth(lambda: recorder.queued)
        # Journals left by processes that died: replayed in the background, never holding up the app's start.
        self.loop.create_task(recorder.replay_orphans(), name="tollgate-meter-replay")
        metering = Metering(config, catalog, recorder, budget, metrics, clock, rate_keeper)
        versions = await asyncio.to_thread(_price_versions, store)
        if versions:  # rows priced, and bounded, as the proxy's are (pricing.history): the map is read now
            metering.configure(config, catalog.loaded() if isinstance(catalog, LazyCatalog) else catalog, versions)
        watcher = RuntimeLimitWatcher(RuntimeLimits(store), metering.apply_runtime_limits, config.budget.sync_interval)
        with contextlib.suppress(sa.exc.SQLAlchemyError):  # a database not ready yet: the watcher tries again
            await watcher.refresh()
        watcher.start()
        started.push_async_callback(watcher.close)
        return metering

    async def _prepare(self, store: Store) -> None:
        """Bring the schema up to date; an unreachable database is retried in the background, not fatal."""
        try:
            await asyncio.to_thread(store.create_tables)
        except UpgradeRefused as refused:
            if not isinstance(refused.__cause__, sa.exc.OperationalError | sa.exc.InterfaceError):
                raise
            logger.error("%s; usage records wait in the journal until it answers", refused)
            self.loop.create_task(self._prepare_later(store), name="tollgate-meter-prepare")

    async def _prepare_later(self, store: Store) -> None:
        while True:
            await asyncio.sleep(_PREPARE_RETRY_S)
            try:
                await asyncio.to_thread(store.create_tables)
            except UpgradeRefused as refused:
                logger.warning("database still not ready: %s", refused)
                continue
            logger.warning("database %s is ready: the journal's records are written now", store.dialect)
            return

    async def _flush(self) -> bool:
        return await self.recorder.flush()

    def flush(self, timeout: float | None = None) -> bool:
        """Write every finished record now; False if the database refused (they wait in the journal)."""
        return self.call(self._flush(), timeout)

    def close(self, timeout: float = _CLOSE_TIMEOUT_S) -> None:
        """Write what is queued, give back leases, stop the services and the thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self.call(self._stack.aclose(), timeout)
        except Exception:
            logger.exception("the meter did not stop cleanly; its journal keeps what was not written")
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()

    def abandon_after_fork(self) -> None:
        """In a forked child: let go of the parent's services without touching them.

        The child has no copy of the meter's thread; its queued records are the parent's to write.
        The journal's lock and segment are closed, so that the parent's lock is not held by the
        child after the parent dies, and the engines forget their pools without closing the
        parent's connections.
        """
        self._closed = True
        with contextlib.suppress(OSError, AttributeError):
            self.journal.close_inherited()
        with contextlib.suppress(AttributeError):
            for engine in {self.store.engine, self.store.write_engine}:
                engine.dispose(close=False)
