"""The in-server scheduler that generates last month's invoices once their generate time has passed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pricing import Catalog
from proxy.billing.periods import due_period
from proxy.billing.queries import Generation, generate_invoices
from proxy.billing.settings import BillingSettings, CurrentBilling
from proxy.clock import Clock, system_clock
from proxy.recording.store import Store

logger = logging.getLogger("tollgate.invoices")


class InvoiceScheduler:
    """Generates last month's invoices inside the server once ``due_period`` says so.

    Every instance may run one: generation is idempotent and safe when concurrent. It checks
    every ``interval`` seconds and generates a period once per process; after a restart it
    generates it again, which creates only what is missing.
    """

    def __init__(
        self,
        store: Store,
        settings: BillingSettings | CurrentBilling,
        *,
        prices: Catalog | Callable[[], Catalog] | None = None,
        clock: Clock = system_clock,
        interval: float = 300.0,
    ) -> None:
        self._billing = settings if isinstance(settings, CurrentBilling) else CurrentBilling(settings)
        self._store = store
        self._prices = prices
        self._clock = clock
        self._interval = interval
        self._done: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def settings(self) -> BillingSettings:
        """The settings in force now (a reload may have changed them since the start)."""
        return self._billing.settings

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tollgate-invoices")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def run_once(self) -> Generation | None:
        """Generate the due period if this process has not yet; None when there was nothing to do."""
        now = self._clock()
        settings = self.settings  # one reading, so a reload cannot change them mid-run
        period = due_period(now, settings)
        if period is None or period == self._done:
            return None
        prices = self._prices() if callable(self._prices) else self._prices  # the prices in force, after a reload
        result = await asyncio.to_thread(generate_invoices, self._store, settings, period, now, prices=prices)
        self._done = period
        return result

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                # A database outage must not end the loop: the next tick tries again.
                logger.exception("invoice generation failed; retrying in %.0fs", self._interval)
            await asyncio.sleep(self._interval)
