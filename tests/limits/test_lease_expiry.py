"""A lease whose renewals failed for its time to live is not spent: other workers count it as free.

Worker A holds a lease and then cannot renew it (its database is unreachable for a while, or its
syncer is starved). Once the lease expires, worker B may lease the same budget. A must not go on
admitting from what it still holds locally, or the two together pass a hard limit.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from proxy.attribution import Attribution
from proxy.config import BudgetConfig, LimitConfig, parse_config
from proxy.errors import RateLimitExceeded, SpendLimitExceeded
from proxy.limits.budget import BudgetKeeper
from proxy.limits.ledger import Ledger
from proxy.limits.rate_keeper import RateKeeper
from proxy.limits.rate_ledger import RateLedger
from proxy.limits.rates import RateBook, compile_rate_rules
from proxy.limits.rules import Counter, LimitBook, compile_rules
from proxy.recording.store import Store

ALICE = Attribution(user="alice")
QUIET = BudgetConfig().model_copy(update={"sync_interval": 3600})  # syncs run only when a test calls them
LIMIT = 10**12  # $1
BOUND = 10**10  # $0.01: a hundred requests fit


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _counter() -> Counter:
    limits = [LimitConfig(scope="user", window="total", max_usd=Decimal(1))]
    [counter] = LimitBook(compile_rules(limits)).counters(ALICE, datetime.now(UTC))
    assert counter.block_pico == LIMIT
    return counter


async def _admit_until_refused(keeper: BudgetKeeper, counter: Counter) -> int:
    admitted = 0
    while admitted < 1000:
        try:
            await keeper.admit([counter], BOUND, "a test")
        except SpendLimitExceeded:
            return admitted
        admitted += 1
    raise AssertionError("never refused")


def test_an_expired_lease_is_not_spent_after_another_worker_leased_its_budget(store: Store) -> None:
    counter, clock = _counter(), _Clock()
    ledger_a, ledger_b = Ledger(store, holder="worker-a"), Ledger(store, holder="worker-b")

    async def run() -> tuple[int, int, int]:
        a, b = BudgetKeeper(ledger_a, QUIET, clock), BudgetKeeper(ledger_b, QUIET, clock)
        first = await a.admit([counter], BOUND, "a test")
        a.settle(first, 0)  # answered at no cost: A's lease keeps room for more
        second = a.admit_now([counter], BOUND)  # ... which it spends without the database
        assert second is not None
        a.settle(second, 0)
        clock.now += QUIET.lease_ttl + 1  # A's renewals failed all this while: its lease expired
        by_b = await _admit_until_refused(b, counter)
        with pytest.raises(SpendLimitExceeded):
            await a.admit([counter], BOUND, "a test")
        spent, in_leases = ledger_a.status([counter.key], clock.now)[counter.key]
        return by_b, spent, in_leases

    by_b, spent, in_leases = asyncio.run(run())
    # B leased the whole budget, A's expired lease included; A admits nothing more.
    assert by_b == LIMIT // BOUND
    assert spent + in_leases <= LIMIT


def test_a_lease_past_two_thirds_of_its_life_is_taken_up_again_through_the_database(store: Store) -> None:
    counter, clock = _counter(), _Clock()
    ledger = Ledger(store, holder="worker-a")

    async def run() -> tuple[int, int, int]:
        keeper = BudgetKeeper(ledger, QUIET, clock)
        keeper.settle(await keeper.admit([counter], BOUND, "a test"), 0)
        held_before = ledger.status([counter.key], clock.now)[counter.key][1]
        extensions = keeper.extensions
        clock.now += QUIET.lease_ttl * 0.8  # not expired yet, but too old to spend without asking
        assert keeper.admit_now([counter], BOUND) is None
        await keeper.admit([counter], BOUND, "a test")
        clock.now += QUIET.lease_ttl * 0.5  # alive: the visit renewed it
        held_after = ledger.status([counter.key], clock.now)[counter.key][1]
        return keeper.extensions - extensions, held_before, held_after

    visits, held_before, held_after = asyncio.run(run())
    assert visits == 1
    assert held_after >= held_before > 0  # nothing was lost: no other worker took any of it


def test_a_renewal_does_not_bring_back_a_lease_that_expired(store: Store) -> None:
    counter, clock = _counter(), _Clock()
    ledger = Ledger(store, holder="worker-a")
    grant = ledger.lease(counter.key, LIMIT, BOUND, 4 * BOUND, clock.now, QUIET.lease_ttl)
    assert grant.granted == 4 * BOUND
    clock.now += QUIET.lease_ttl + 1
    ledger.renew(clock.now, QUIET.lease_ttl)
    assert ledger.status([counter.key], clock.now)[counter.key] == (0, 0)


def test_an_expired_concurrency_lease_holds_no_new_request_once_another_worker_took_its_slots(store: Store) -> None:
    text = '[[rate_limits]]\nscope = "user"\nmax_concurrent = 2\n'
    clock = _Clock()
    [counter] = RateBook(compile_rate_rules(parse_config(text).rate_limits)).counters(ALICE, None, clock.now)
    ledger_a, ledger_b = RateLedger(store, "worker-a"), RateLedger(store, "worker-b")

    async def run() -> int:
        a, b = RateKeeper(ledger_a, QUIET, clock), RateKeeper(ledger_b, QUIET, clock)
        a.settle(await a.admit((counter,), 0, "openai"), 0)  # A keeps the slot leased for its next request
        clock.now += QUIET.lease_ttl + 1  # A's renewals failed all this while
        running = 0
        while running < 10:
            try:
                await b.admit((counter,), 0, "openai")
            except RateLimitExceeded:
                break
            running += 1
        with pytest.raises(RateLimitExceeded):
            await a.admit((counter,), 0, "openai")
        return running

    assert asyncio.run(run()) == 2  # B runs two at once, A's expired slot included; A starts no third


def test_a_renewal_does_not_bring_back_a_concurrency_lease_that_expired(store: Store) -> None:
    clock, ledger = _Clock(), RateLedger(store, "worker-a")
    assert ledger.lease("user:alice:concurrent", 2, 1, 1, clock.now + QUIET.lease_ttl, clock.now).granted == 1
    clock.now += QUIET.lease_ttl + 1
    ledger.renew(["user:alice:concurrent"], clock.now + QUIET.lease_ttl, clock.now)
    assert ledger.taken("user:alice:concurrent", clock.now) == 0
