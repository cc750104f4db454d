"""A lease sync that runs while the same lease is being extended must not orphan the grant.

Under load the database call of an extension can take longer than a sync interval. A sync that
forgot the lease meanwhile (it looked empty: nothing granted, nothing in flight) let the grant land
in an object no one held, while the database kept it as this worker's lease: budget or concurrency
slots that no request could use and no give-back returned, so requests that fit were refused.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from proxy.attribution import Attribution
from proxy.config import BudgetConfig, LimitConfig, parse_config
from proxy.limits.budget import BudgetKeeper
from proxy.limits.ledger import Ledger
from proxy.limits.rate_keeper import RateKeeper
from proxy.limits.rate_ledger import RateLedger
from proxy.limits.rates import RateBook, compile_rate_rules
from proxy.limits.rules import LimitBook, compile_rules
from proxy.recording.store import Store

ALICE = Attribution(user="alice")
QUIET = BudgetConfig().model_copy(update={"sync_interval": 3600})  # syncs run only when the test calls them


class _Held:
    """Wraps a ledger's ``lease`` so that the first call waits in its thread until released."""

    def __init__(self, lease: Callable[..., Any]) -> None:
        self._lease = lease
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, *args: Any) -> Any:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(10)
        return self._lease(*args)


async def _while_extending(held: _Held, admitting: asyncio.Task[Any], sync: Callable[[], Any]) -> Any:
    """Run a sync while ``admitting`` waits inside the database call of its extension, then finish it."""
    deadline = time.monotonic() + 10
    while not held.entered.is_set():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    await sync()
    held.release.set()
    return await admitting


def test_a_spend_lease_synced_while_it_is_extended_gives_all_its_budget_back(store: Store) -> None:
    limits = [LimitConfig(scope="user", window="total", max_usd=Decimal(1))]
    [counter] = LimitBook(compile_rules(limits)).counters(ALICE, datetime.now(UTC))
    ledger = Ledger(store, holder="worker-0")
    held = _Held(ledger.lease)
    ledger.lease = held  # type: ignore[method-assign, assignment]
    bound = 10**9  # $0.001

    async def run() -> tuple[int, int]:
        keeper = BudgetKeeper(ledger, QUIET)
        admitting = asyncio.create_task(keeper.admit([counter], bound, "a test"))
        admission = await _while_extending(held, admitting, keeper.sync)
        keeper.settle(admission, 0)  # answered at no cost
        await keeper.sync()
        await keeper.sync()  # a sync with no admission since the last one gives the whole lease back
        spent, in_leases = ledger.status([counter.key], time.time())[counter.key]
        return spent, in_leases

    assert asyncio.run(run()) == (0, 0)


def test_a_concurrency_lease_synced_while_it_is_extended_frees_its_slots(store: Store) -> None:
    text = '[[rate_limits]]\nscope = "user"\nmax_concurrent = 4\n'
    [counter] = RateBook(compile_rate_rules(parse_config(text).rate_limits)).counters(ALICE, None, time.time())
    ledger = RateLedger(store, "worker-0")
    held = _Held(ledger.lease)
    ledger.lease = held  # type: ignore[method-assign, assignment]

    async def run() -> int:
        keeper = RateKeeper(ledger, QUIET)
        admitting = asyncio.create_task(keeper.admit((counter,), 0, "openai"))
        hold = await _while_extending(held, admitting, keeper.sync)
        keeper.settle(hold, 0)
        await keeper.sync()
        await keeper.sync()
        return ledger.taken(counter.key, time.time())

    assert asyncio.run(run()) == 0
