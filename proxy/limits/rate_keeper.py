"""Admission against rate limits: hold room before forwarding, settle after.

Like the spend budget (``proxy.limits.budget``), each worker process keeps a *lease* per rate
counter: room it took from the database (``proxy.limits.rate_ledger``). A request is admitted
when every counter it touches has room in the lease: one request on a requests-per-minute
counter and on a concurrency counter, its token bound on a tokens-per-minute counter. That
check is local, so most requests cost no database round trip; a lease that runs short grows
by a database visit, sized to the worker's recent traffic and never more than half of what
is free. Settling gives a concurrency slot back to the lease, and turns a token hold into the
tokens the request really used, so the room it did not use serves the next requests. A
background task gives back room that sits idle, so other workers can use it.

Refusals are ``RateLimitExceeded`` (429, retryable, in the dialect's own shape); when the
database cannot be reached, ``LimitsUnavailable`` (503), unless ``limits_when_db_down = "allow"``.

A concurrency lease lives by its renewals: as a spend lease, it holds no new request once it is
older than two thirds of ``lease_ttl``, and is taken up again through the database.

Threads: as the budget keeper, ``admit_now`` and ``settle`` may be called from any thread; a lock
keeps each change to the leases' figures whole. ``admit`` runs on the keeper's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from proxy.config import BudgetConfig
from proxy.errors import LimitsUnavailable
from proxy.limits.give_backs import GiveBacks
from proxy.limits.rate_ledger import RateLedger
from proxy.limits.rate_refusal import rate_refusal
from proxy.limits.rates import CONCURRENT, REQUESTS, TOKENS, RateCounter
from proxy.threads import background_thread

logger = logging.getLogger("tollgate.rates")


@dataclass(slots=True)
class _Lease:
    counter: RateCounter
    granted: int = 0  # room this worker holds on the counter in the database
    in_flight: int = 0  # holds of admitted requests still running
    used: int = 0  # room used by finished requests in this minute (never for a concurrency counter)
    admitted: int = 0  # holds admitted since the last sync, to size the next lease
    renewed_at: float = float("-inf")  # when the database last renewed it (concurrency leases)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def available(self) -> int:
        return self.granted - self.in_flight - self.used

    def short_of(self, need: int, stale: float) -> bool:
        """Whether it cannot hold ``need`` without the database: too little room, or (a concurrency lease,
        which lives by its renewals) renewed at ``stale`` or before."""
        return self.available < need or (self.counter.resets_at is None and self.renewed_at <= stale)


@dataclass(frozen=True, slots=True)
class RateHold:
    """What a request holds on rate counters; settled once its tokens are known."""

    counters: tuple[RateCounter, ...]
    tokens: int
    """The token bound held on each tokens-per-minute counter."""


NO_HOLD = RateHold(counters=(), tokens=0)


def _need(counter: RateCounter, tokens: int) -> int:
    return tokens if counter.kind == TOKENS else 1


class RateKeeper:
    def __init__(self, ledger: RateLedger, config: BudgetConfig, clock: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self.config = config
        self.clock = clock
        self._leases: dict[str, _Lease] = {}
        self._task: asyncio.Task[None] | None = None
        self._last_sync = clock()
        self.extensions = 0  # database visits on the request path, for the log and the benchmark
        self._mutex = threading.Lock()
        self._syncer = background_thread("tollgate-rates")
        self._giving_back = GiveBacks()
        self._fresh_for = config.lease_ttl * 2 / 3  # see proxy.limits.budget

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._sync_forever(), name="tollgate-rates")

    async def close(self) -> None:
        logger.debug("%d rate lease extensions waited for on the request path", self.extensions)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with self._mutex:
            returns = {key: lease.available for key, lease in self._leases.items() if lease.available > 0}
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            await asyncio.to_thread(self.ledger.give_back, returns)
        self._syncer.shutdown()

    def admit_now(self, counters: Sequence[RateCounter], tokens: int) -> RateHold | None:
        """Hold room on every counter from the leases in hand; None if one must grow first."""
        if not counters:
            return NO_HOLD
        stale = self.clock() - self._fresh_for
        with self._mutex:
            leases = [self._lease(c) for c in counters]
            if any(lease.short_of(_need(lease.counter, tokens), stale) for lease in leases):
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
            stale = self.clock() - self._fresh_for
            with self._mutex:
                short = [lease for c in counters if (lease := self._lease(c)).short_of(_need(c, tokens), stale)]
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

    async def _extend(self, lease: _Lease, need: int, dialect_kind: str) -> None:
        async with lease.lock:
            with self._mutex:
                if self._leases.setdefault(lease.counter.key, lease) is not lease:
                    return  # a sync forgot this lease meanwhile, and a newer one took its place: the caller asks again
                short = need - lease.available
                elapsed = max(self.clock() - self._last_sync, 0.05)
                rate = lease.admitted / elapsed
                held = lease.in_flight + lease.used
                now = self.clock()
                renewing = lease.short_of(0, now - self._fresh_for)
            if short <= 0 and not renewing:
                return
            short = max(short, 0)
            counter = lease.counter
            if need > counter.limit:
                raise rate_refusal(counter, counter.limit - lease.granted, need, now, dialect_kind)
            want = max(short, int(rate * self.config.lease_seconds), need * 4)
            self.extensions += 1
            args = (counter.key, counter.limit, short, want, self._expiry(counter, now), now, held)
            try:
                grant = await asyncio.to_thread(self.ledger.lease, *args)
                if not grant.granted and await self._giving_back.wait_for(counter.key):
                    grant = await asyncio.to_thread(self.ledger.lease, *args)
            except sa.exc.SQLAlchemyError as exc:
                if self.config.limits_when_db_down == "allow":
                    logger.error("rate limits unchecked: the database is unreachable (%s)", type(exc).__name__)
                    with self._mutex:
                        lease.granted += short  # admitted on trust; never written to the database
                        lease.renewed_at = now
                    return
                raise LimitsUnavailable(
                    "Tollgate cannot check rate limits because its database is unreachable; try again shortly.",
                    scope=counter.scope,
                ) from None
            with self._mutex:
                lease.granted += grant.granted - grant.taken_back
                lease.renewed_at = max(lease.renewed_at, now)
                free = grant.free + lease.available
            if grant.taken_back:
                logger.warning(
                    "rate lease on %s had expired and other workers leased %d of it meanwhile: its renewals "
                    "failed for longer than budget.lease_ttl",
                    counter.key,
                    grant.taken_back,
                )
            if short and grant.granted == 0:
                raise rate_refusal(counter, free, need, now, dialect_kind)

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.sync_interval)
            try:
                await self.sync()
            except sa.exc.SQLAlchemyError as exc:
                logger.warning("rate lease sync failed: %s", type(exc).__name__)

    async def sync(self) -> None:
        """Give back idle room, renew concurrency leases, forget the leases of minutes that are over."""
        now = self.clock()
        returns: dict[str, int] = {}
        renew: list[str] = []
        with self._mutex:
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
        alive = now - self.config.lease_ttl  # renewed: those still live at ``now`` (see RateLedger.renew)
        with self._mutex:
            for key in renew:
                renewed = self._leases.get(key)
                if renewed is not None and renewed.renewed_at > alive:
                    renewed.renewed_at = max(renewed.renewed_at, now)

    def _write_sync(self, returns: dict[str, int], renew: list[str], now: float) -> None:
        self.ledger.give_back(returns)
        self.ledger.renew(renew, now + self.config.lease_ttl, now)
