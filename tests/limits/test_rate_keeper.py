"""Rate-limit leases: room held across keepers (workers) sharing a database, never more than the limit."""

from __future__ import annotations

import asyncio

import pytest

from proxy.attribution import Attribution
from proxy.config import BudgetConfig, parse_config
from proxy.errors import LimitsUnavailable, RateLimitExceeded, TokenRateExceeded
from proxy.limits.rate_keeper import RateHold, RateKeeper
from proxy.limits.rate_ledger import RateLedger
from proxy.limits.rates import RateBook, RateCounter, compile_rate_rules
from proxy.recording.store import Store

NOW = 1_779_999_980.0  # 20 s into a minute
ALICE = Attribution(user="alice")


class _Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def _book(text: str) -> RateBook:
    return RateBook(compile_rate_rules(parse_config(text).rate_limits))


def _keepers(store: Store, clock: _Clock, count: int = 2) -> list[RateKeeper]:
    return [RateKeeper(RateLedger(store, f"worker-{i}"), BudgetConfig(), clock=clock) for i in range(count)]


async def _try(keeper: RateKeeper, counters: tuple[RateCounter, ...], tokens: int = 0) -> RateHold | None:
    try:
        return await keeper.admit(counters, tokens, "openai")
    except RateLimitExceeded:
        return None


def test_two_workers_together_admit_exactly_the_requests_per_minute(store: Store) -> None:
    clock = _Clock()
    counters = _book('[[rate_limits]]\nscope = "user"\nrequests_per_minute = 25\n').counters(ALICE, None, NOW)
    keepers = _keepers(store, clock)

    async def run() -> int:
        holds = await asyncio.gather(*(_try(keepers[i % 2], counters) for i in range(80)))
        return sum(hold is not None for hold in holds)

    assert asyncio.run(run()) == 25


def test_a_new_minute_starts_from_nothing(store: Store) -> None:
    clock = _Clock()
    book = _book('[[rate_limits]]\nscope = "user"\nrequests_per_minute = 2\n')
    [keeper] = _keepers(store, clock, 1)

    async def run() -> list[bool]:
        got = [await _try(keeper, book.counters(ALICE, None, clock.now)) is not None for _ in range(3)]
        clock.now += 60
        got.append(await _try(keeper, book.counters(ALICE, None, clock.now)) is not None)
        return got

    assert asyncio.run(run()) == [True, True, False, True]


def test_tokens_are_held_by_the_bound_and_settled_to_the_real_count(store: Store) -> None:
    clock = _Clock()
    counters = _book('[[rate_limits]]\nscope = "user"\ntokens_per_minute = 1000\n').counters(ALICE, None, NOW)
    [keeper] = _keepers(store, clock, 1)

    async def run() -> list[bool]:
        first = await keeper.admit(counters, 600, "openai")
        refused = await _try(keeper, counters, 600) is None  # 600 + 600 held would pass 1000
        keeper.settle(first, 100)  # it used 100: 900 are left
        second = await _try(keeper, counters, 600) is not None
        return [refused, second]

    assert asyncio.run(run()) == [True, True]


def test_a_token_bound_larger_than_the_limit_is_refused_as_never_fitting(store: Store) -> None:
    counters = _book('[[rate_limits]]\nscope = "user"\ntokens_per_minute = 1000\n').counters(ALICE, None, NOW)
    [keeper] = _keepers(store, _Clock(), 1)
    with pytest.raises(TokenRateExceeded) as raised:
        asyncio.run(keeper.admit(counters, 5000, "openai"))
    assert raised.value.headers["x-should-retry"] == "false"
    assert "can never fit" in raised.value.message


def test_concurrency_slots_come_back_when_requests_end(store: Store) -> None:
    clock = _Clock()
    counters = _book('[[rate_limits]]\nscope = "global"\nmax_concurrent = 3\n').counters(ALICE, None, NOW)
    keepers = _keepers(store, clock)

    async def run() -> tuple[int, bool]:
        holds = [await _try(keepers[i % 2], counters) for i in range(5)]
        admitted = [hold for hold in holds if hold is not None]
        keepers[0].settle(admitted[0], 0)
        again = await _try(keepers[0], counters) is not None
        return len(admitted), again

    assert asyncio.run(run()) == (3, True)


def test_idle_room_is_given_back_for_another_worker(store: Store) -> None:
    clock = _Clock()
    counters = _book('[[rate_limits]]\nscope = "user"\nrequests_per_minute = 100\n').counters(ALICE, None, NOW)
    first, second = _keepers(store, clock)

    async def run() -> tuple[int, int]:
        await first.admit(counters, 0, "openai")  # leases ahead: more than the one request
        held = first.ledger.taken(counters[0].key, clock.now)
        clock.now += 1
        await first.sync()  # nothing admitted since: all but the used slot goes back
        await first.sync()
        return held, second.ledger.taken(counters[0].key, clock.now)

    held, after = asyncio.run(run())
    assert held > 1 and after == 1


def test_a_refusal_carries_openai_rate_limit_headers(store: Store) -> None:
    counters = _book('[[rate_limits]]\nscope = "user"\nrequests_per_minute = 1\n').counters(ALICE, None, NOW)
    [keeper] = _keepers(store, _Clock(), 1)

    async def run() -> RateLimitExceeded:
        await keeper.admit(counters, 0, "openai")
        with pytest.raises(RateLimitExceeded) as raised:
            await keeper.admit(counters, 0, "openai")
        return raised.value

    error = asyncio.run(run())
    assert (error.status, error.type, error.code) == (429, "requests", "rate_limit_exceeded")
    assert error.headers["x-ratelimit-limit-requests"] == "1"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.headers["x-ratelimit-reset-requests"] == "40s"
    assert error.headers["retry-after"] == "40"
    assert "x-should-retry" not in error.headers


def test_an_unreachable_database_refuses_with_503_unless_told_to_allow(own_database: str) -> None:
    from tests.conftest import database_available

    store = Store(own_database)
    store.create_tables()
    counters = _book('[[rate_limits]]\nscope = "user"\nrequests_per_minute = 10\n').counters(ALICE, None, NOW)
    refuse = RateKeeper(RateLedger(store, "w-refuse"), BudgetConfig(), clock=_Clock())
    allow = RateKeeper(RateLedger(store, "w-allow"), BudgetConfig(limits_when_db_down="allow"), clock=_Clock())
    database_available(own_database, False)
    try:
        with pytest.raises(LimitsUnavailable):
            asyncio.run(refuse.admit(counters, 0, "openai"))
        assert asyncio.run(allow.admit(counters, 0, "openai")).counters == counters
    finally:
        database_available(own_database, True)
        store.dispose()
