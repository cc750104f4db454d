"""Admission against rate limits: hold room before forwarding, settle after.

Like the spend budget (``proxy.limits.budget``), each worker process keeps a *lease* per rate
counter: room it took from the database (``proxy.limits.rate_ledger``), kept as
``proxy.limits.leases`` describes. A request is admitted when every counter it touches has
room in the lease: one request on a requests-per-minute counter and on a concurrency counter,
its token bound on a tokens-per-minute counter. Settling gives a concurrency slot back to the
lease, and turns a token hold into the tokens the request really used, so the room it did not
use serves the next requests.

A per-minute lease lives until its minute ends, whatever its renewals; a concurrency lease lives
by its renewals, and is the one that goes stale.

Refusals are ``RateLimitExceeded`` (429, retryable, in the dialect's own shape).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from proxy.config import BudgetConfig
from proxy.errors import RateLimitExceeded
from proxy.limits.leases import Lease, LeaseKeeper
from proxy.limits.rate_ledger import RateGrant, RateLedger
from proxy.limits.rate_refusal import rate_refusal
from proxy.limits.rates import CONCURRENT, REQUESTS, TOKENS, RateCounter

logger = logging.getLogger("tollgate.rates")


@dataclass(slots=True)
class _Lease(Lease):
    counter: RateCounter
    used: int = 0  # room used by finished requests in this minute (never for a concurrency counter)

    @property
    def held(self) -> int:
        return self.in_flight + self.used


@dataclass(frozen=True, slots=True)
class RateHold:
    """What a request holds on rate counters; settled once its tokens are known."""

    counters: tuple[RateCounter, ...]
    tokens: int
    """The token bound held on each tokens-per-minute counter."""


NO_HOLD = RateHold(counters=(), tokens=0)


def _need(counter: RateCounter, tokens: int) -> int:
    return tokens if counter.kind == TOKENS else 1


class RateKeeper(LeaseKeeper[_Lease, RateGrant]):
    what = "rate"

    def __init__(self, ledger: RateLedger, config: BudgetConfig, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, clock, "tollgate-rates", logger)
        self.ledger = ledger

    async def close(self) -> None:
        await self._stop_syncing()
        with self._mutex:
            returns = {key: lease.available for key, lease in self._leases.items() if lease.available > 0}
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            await asyncio.to_thread(self.ledger.give_back, returns)
        self._syncer.shutdown()

    def admit_now(self, counters: Sequence[RateCounter], tokens: int) -> RateHold | None:
        """Hold room on every counter from the leases in hand; None if one must grow first."""
        if not counters:
            return NO_HOLD
        now = self.clock()
        with self._mutex:
            leases = [self._lease(c) for c in counters]
            if any(self._short(lease, _need(lease.counter, tokens), now) for lease in leases):
                return None
            for lease in leases:  # held on all at once, under the lock
                need = _need(lease.counter, tokens)
                lease.in_flight += need
                lease.admitted += need
        return RateHold(tuple(counters), tokens)

    async def admit(self, counters: Sequence[RateCounter], tokens: int, dialect_kind: str) -> RateHold:
        """Hold room on every counter, growing leases as needed, or raise ``RateLimitExceeded``."""
        while True:
            hold = self.admit_now(counters, tokens)
            if hold is not None:
                return hold
            now = self.clock()
            with self._mutex:
                short = [lease for c in counters if self._short(lease := self._lease(c), _need(c, tokens), now)]
            for lease in short:
                await self._extend(lease, _need(lease.counter, tokens), dialect_kind)

    def settle(self, hold: RateHold, tokens_used: int) -> None:
        """The request is done: free its concurrency slots, and count its real tokens instead of its bound."""
        if not hold.counters:
            return
        with self._mutex:
            for counter in hold.counters:
                lease = self._leases.get(counter.key)
                if lease is None:
                    continue
                need = _need(counter, hold.tokens)
                lease.in_flight -= need
                if counter.kind == REQUESTS:
                    lease.used += need
                elif counter.kind == TOKENS:
                    lease.used += tokens_used

    def release(self, hold: RateHold) -> None:
        """The request was refused before it was sent: it takes no room at all."""
        if not hold.counters:
            return
        with self._mutex:
            for counter in hold.counters:
                lease = self._leases.get(counter.key)
                if lease is not None:
                    lease.in_flight -= _need(counter, hold.tokens)

    def _lease(self, counter: RateCounter) -> _Lease:
        lease = self._leases.get(counter.key)
        if lease is None:
            lease = self._leases[counter.key] = _Lease(counter)
        elif lease.counter is not counter:
            lease.counter = counter  # a reload may have changed its limit
        return lease

    def _expiry(self, counter: RateCounter, now: float) -> float:
        if counter.resets_at is not None:
            return counter.resets_at  # used room counts until the minute is over
        return now + self.config.lease_ttl

    def _short(self, lease: _Lease, need: int, now: float) -> bool:
        """Whether ``lease`` cannot hold ``need`` without the database: too little room, or gone stale."""
        return lease.available < need or self._stale(lease, now)

    def _stale(self, lease: _Lease, now: float) -> bool:
        return lease.counter.resets_at is None and super()._stale(lease, now)  # a minute's lease lives out its minute

    def _ask(self, lease: _Lease, short: int, want: int, now: float, held: int) -> RateGrant:
        counter = lease.counter
        return self.ledger.lease(counter.key, counter.limit, short, want, self._expiry(counter, now), now, held)

    def _check(self, lease: _Lease, need: int, now: float, context: str) -> None:
        counter = lease.counter
        if need > counter.limit:
            raise rate_refusal(counter, counter.limit - lease.granted, need, now, context)

    def _refused(self, lease: _Lease, need: int, grant: RateGrant, now: float, context: str) -> RateLimitExceeded:
        return rate_refusal(lease.counter, grant.free + lease.available, need, now, context)

    async def sync(self) -> None:
        """Give back idle room, renew concurrency leases, forget the leases of minutes that are over."""
        now = self.clock()
        returns: dict[str, int] = {}
        renew: list[str] = []
        with self._mutex:
            if not self._leases:
                self._last_sync = now
                return  # nothing leased: nothing to renew or give back, and no write to the database
            elapsed = max(now - self._last_sync, 0.05)
            for key, lease in list(self._leases.items()):
                target = int(lease.admitted / elapsed * self.config.lease_seconds)
                excess = lease.available if lease.admitted == 0 else lease.available - 2 * target
                if excess > 0 and not lease.lock.locked():
                    returns[key] = excess
                    lease.granted -= excess
                lease.admitted = 0
                over = lease.counter.resets_at is not None and lease.counter.resets_at <= now
                if lease.lock.locked():
                    # Being extended: forgotten now, its grant would hold room in the database that no one uses.
                    if lease.counter.kind == CONCURRENT:
                        renew.append(key)
                elif over and lease.in_flight == 0:
                    del self._leases[key]  # its rows expire in the database on their own
                elif lease.counter.kind == CONCURRENT:
                    if lease.granted <= 0 and lease.in_flight == 0:
                        del self._leases[key]
                    else:
                        renew.append(key)
            self._last_sync = now
        await self._giving_back.write(self._syncer, self._write_sync, returns, renew, now)
        self._renewed(now, renew)

    def _write_sync(self, returns: dict[str, int], renew: list[str], now: float) -> None:
        self.ledger.give_back(returns)
        self.ledger.renew(renew, now + self.config.lease_ttl, now)
