"""A worker that holds no lease writes nothing to the database when it syncs: an idle proxy or meter stays idle."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from proxy.attribution import Attribution
from proxy.config import BudgetConfig, LimitConfig
from proxy.limits.budget import BudgetKeeper
from proxy.limits.ledger import Ledger
from proxy.limits.rate_keeper import RateKeeper
from proxy.limits.rate_ledger import RateLedger
from proxy.limits.rules import LimitBook, compile_rules
from proxy.recording.store import Store

QUIET = BudgetConfig().model_copy(update={"sync_interval": 3600})


class _Counting:
    """Counts the calls to a ledger's methods that write."""

    def __init__(self, ledger: Any) -> None:
        self.writes = 0
        for name in ("give_back", "renew"):
            method = getattr(ledger, name)
            setattr(ledger, name, self._counted(method))

    def _counted(self, method: Any) -> Any:
        def counted(*args: Any) -> Any:
            self.writes += 1
            return method(*args)

        return counted


def test_keepers_with_no_lease_do_not_write_when_they_sync(store: Store) -> None:
    budget_ledger, rate_ledger = Ledger(store, holder="worker-a"), RateLedger(store, "worker-a")
    budget_writes, rate_writes = _Counting(budget_ledger), _Counting(rate_ledger)

    async def run() -> None:
        budget, rates = BudgetKeeper(budget_ledger, QUIET), RateKeeper(rate_ledger, QUIET)
        for _ in range(3):
            await budget.sync()
            await rates.sync()

    asyncio.run(run())
    assert (budget_writes.writes, rate_writes.writes) == (0, 0)


def test_a_keeper_holding_a_lease_still_renews_it(store: Store) -> None:
    limits = [LimitConfig(scope="user", window="total", max_usd=Decimal(1))]
    [counter] = LimitBook(compile_rules(limits)).counters(Attribution(user="alice"), datetime.now(UTC))
    ledger = Ledger(store, holder="worker-a")
    writes = _Counting(ledger)

    async def run() -> None:
        keeper = BudgetKeeper(ledger, QUIET)
        await keeper.admit([counter], 10**9, "a test")
        await keeper.sync()

    asyncio.run(run())
    assert writes.writes == 2  # the give-back and the renewal
